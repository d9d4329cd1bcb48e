#!/usr/bin/python3
"""test_config.py — `sluice -t`: a bad config is refused with exit status 1
and `FILE:LINE: message` naming the line at fault (syntax, type, range and
checks made after the file ran); the example config checks out; a SIGHUP
with a broken config keeps the running one; `sluice -v` prints the version."""

import os
import shutil
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hostutil import H2, ROUTES, Site, Sluice, main, make_cert, need  # noqa: E402

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..",
                        "examples")

# (the bad line, the message after FILE:LINE: ); the bad line is line 3.
BAD = [
    ("workers(0)", "workers must be an integer in 1..1024, got 0"),
    ('listen { "127.0.0.1:1", tsl = true }',
     "listen: unknown key 'tsl' (known: host, port, tls, backlog, reuseport)"),
    ('route { path = "/x" }', "route: exactly one of static, echo, ret, proxy is required"),
    ("x = = 1", "unexpected symbol near '='"),
    ("timeouts { idle = -1 }", "timeouts: idle must be in 0.001..86400 seconds, got -1"),
    ("workers = 4", None),
    ('route { path = "/", echo = true }', "route: duplicate route for / (first declared at "
     "FILE:2)"),
    ('listen { "127.0.0.1:9", tls = true }', None),
    ('max_body "12q"', None),
    ("error('boom')", "boom"),
]


def check(path):
    p = subprocess.run([Sluice.exe(), "-t", "-c", path], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=20)
    return p.returncode, (p.stdout + p.stderr).decode(errors="replace")


def test_bad_config_file_line():
    with Site() as site:
        for line, msg in BAD:
            path = site.write("bad.lua", 'listen { "127.0.0.1:%d" }\n'
                              'route { path = "/", static = "site" }\n'
                              '%s\n'
                              '-- line 4\n' % (site.plain, line))
            rc, out = check(path)
            assert rc != 0, "%s: exit 0\n%s" % (line, out)
            if msg is None:
                assert "%s:3: " % path in out, "%s: no %s:3:\n%s" % (line, path, out)
            else:
                want = "%s:3: %s" % (path, msg.replace("FILE", path))
                assert want in out, "%s:\nwant %s\ngot  %s" % (line, want, out)
        # Errors found after the file ran point at the declaration.
        path = site.write("bad.lua", '\n\nlisten { "127.0.0.1:%d", tls = true }\n'
                          'route { path = "/", static = "site" }\n' % site.tls)
        rc, out = check(path)
        assert rc != 0 and "%s:3: " % path in out, out
        path = site.write("bad.lua", 'listen { "127.0.0.1:%d" }\n'
                          '\nroute { path = "/", static = "no-such-dir" }\n' % site.plain)
        rc, out = check(path)
        assert rc != 0 and "%s:3: " % path in out, out
        # An unreadable file.
        rc, out = check(site.path("missing.lua"))
        assert rc != 0 and "cannot open %s" % site.path("missing.lua") in out, out


def test_example_config_ok():
    need("openssl")
    with Site() as site:
        d = site.path("ex")
        shutil.copytree(EXAMPLES, d, ignore=shutil.ignore_patterns("certs"))
        os.mkdir(os.path.join(d, "certs"))
        cert, key = make_cert(site.dir, "ex", ["DNS:localhost", "IP:127.0.0.1"])
        shutil.copy(cert, os.path.join(d, "certs", "sluice.pem"))
        shutil.copy(key, os.path.join(d, "certs", "sluice.key"))
        path = os.path.join(d, "sluice.lua")
        rc, out = check(path)
        assert rc == 0, out
        assert "configuration ok" in out, out
        # From another directory: paths are relative to the config file.
        p = subprocess.run([Sluice.exe(), "-t", "-c", path], cwd="/", stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=20)
        assert p.returncode == 0 and b"configuration ok" in p.stdout, p.stdout
        p = subprocess.run([Sluice.exe(), "-v"], stdout=subprocess.PIPE, timeout=10)
        assert p.returncode == 0 and p.stdout.startswith(b"sluice "), p.stdout


def test_reload_bad_config_keeps_running():
    ret = 'route { path = "/r", ret = { body = "one\\n" } }\n'
    with Site() as site, Sluice(site.config(ROUTES + ret, tls=False)) as s:
        path = site.write("sluice.lua", open(site.path("sluice.lua")).read() +
                          "\nworkers(0)\n")
        line = open(path).read().count("\n")
        time.sleep(0.3)  # see sighup_right_after_ready for a SIGHUP at once
        s.signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while "reload failed" not in s.stderr():
            assert time.monotonic() < deadline, s.stderr()[-2000:]
            time.sleep(0.05)
        assert "%s:%d: workers must be" % (path, line) in s.stderr(), s.stderr()[-2000:]
        c = H2.plain(site.plain)
        h, body = c.response(c.request("/r"))
        assert (h[b":status"], body) == (b"200", b"one\n"), (h, body)
        c.close()


def test_sighup_right_after_ready():
    """"ready" on stdout means signals are handled: a SIGHUP at once reloads
    instead of killing the process (the default action of SIGHUP)."""
    with Site() as site:
        cfg = site.config(ROUTES, tls=False)
        for _ in range(15):  # a race: the window after "ready" is short
            with Sluice(cfg) as s:
                s.signal(signal.SIGHUP)
                time.sleep(0.1)
                assert s.alive(), "killed by a SIGHUP sent right after ready (exit %s)" % (
                    s.proc.returncode)


if __name__ == "__main__":
    main(globals())
