#!/usr/bin/python3
"""test_signals.py — `sluice -s reload|stop|quit|reopen -c FILE` signals the
server named by the config's pid_file and prints nothing: a reload switches
to the changed config (curl sees the new body), a config the server cannot
build keeps the running one and logs why with file:line, stop and quit end
it with status 0 and remove the pid file, reopen starts a new access log;
without a pid_file, or with a stale or empty one, it exits 1 with a message.
policy { watch = true }: saving a policy file runs the same reload."""

import os
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hostutil import ROUTES, Site, Sluice, main, need  # noqa: E402


def ret_route(body):
    return 'route { path = "/r", ret = { body = "%s\\n" } }\n' % body


def config(site, body, extra='pid_file "sluice.pid"\n'):
    return site.config(ROUTES + ret_route(body) + extra, tls=False)


def ctl(site, name, cfg=None):
    """Run `sluice -s name -c cfg`; return (exit status, stdout + stderr)."""
    p = subprocess.run([Sluice.exe(), "-s", name, "-c", cfg or site.path("sluice.lua")],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
    return p.returncode, (p.stdout + p.stderr).decode(errors="replace")


def curl(port, path="/r"):
    need("curl")
    p = subprocess.run(["curl", "-sS", "--max-time", "5", "http://127.0.0.1:%d%s" % (port, path)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    return p.stdout


def wait_log(s, text, timeout=5):
    deadline = time.monotonic() + timeout
    while text not in s.stderr():
        assert s.alive(), "sluice died: " + s.stderr()[-2000:]
        assert time.monotonic() < deadline, "no %r in the log:\n%s" % (text, s.stderr()[-2000:])
        time.sleep(0.05)


def read_pid(site):
    with open(site.path("sluice.pid")) as f:
        return int(f.read())


def test_signal_reload():
    with Site() as site, Sluice(config(site, "one")) as s:
        assert read_pid(site) == s.pid
        assert curl(site.plain) == b"one\n"
        cfg = config(site, "two")
        rc, out = ctl(site, "reload")
        assert (rc, out) == (0, ""), (rc, out)
        wait_log(s, "reloaded %s (SIGHUP)" % cfg)
        assert curl(site.plain) == b"two\n"
        # And again: each reload reads the file anew.
        config(site, "three")
        assert ctl(site, "reload") == (0, "")
        deadline = time.monotonic() + 5
        while curl(site.plain) != b"three\n":
            assert time.monotonic() < deadline, s.stderr()[-2000:]
            time.sleep(0.05)
        assert "reload failed" not in s.stderr(), s.stderr()[-2000:]


def test_signal_reload_failed_keeps_config():
    """The sender only loads the config; what only building it can find (a
    certificate that is no certificate) fails in the server, which keeps
    serving the old config and logs file:line."""
    with Site() as site, Sluice(config(site, "one")) as s:
        assert curl(site.plain) == b"one\n"
        site.write("bad.pem", "not a certificate\n")
        site.write("bad.key", "not a key\n")
        cfg = config(site, "two", 'pid_file "sluice.pid"\n'
                     'listen { "127.0.0.1:%d", tls = true }\n'
                     'tls_certificate { cert = "bad.pem", key = "bad.key" }\n' % site.tls)
        line = open(cfg).read().splitlines().index(
            'tls_certificate { cert = "bad.pem", key = "bad.key" }') + 1
        rc, out = ctl(site, "reload")
        assert (rc, out) == (0, ""), (rc, out)
        wait_log(s, "reload failed (SIGHUP), keeping the running configuration: %s:%d: "
                 % (cfg, line))
        assert curl(site.plain) == b"one\n"
        # Mended, the next reload goes through.
        config(site, "three")
        assert ctl(site, "reload") == (0, "")
        wait_log(s, "reloaded %s (SIGHUP)" % cfg)
        assert curl(site.plain) == b"three\n"


def stop_with(name):
    with Site() as site, Sluice(config(site, "one")) as s:
        assert curl(site.plain) == b"one\n"
        s.terminated = True  # it is told to stop by `sluice -s`, not by Sluice
        rc, out = ctl(site, name)
        assert (rc, out) == (0, ""), (rc, out)
        assert s.wait_exit(10) == 0, s.stderr()[-2000:]
        assert not os.path.exists(site.path("sluice.pid"))
        return s.stderr()


def test_signal_stop():
    assert "graceful stop" in stop_with("stop")


def test_signal_quit():
    assert "fast stop" in stop_with("quit")


def test_signal_reopen():
    with Site() as site, Sluice(config(site, "one", 'pid_file "sluice.pid"\n'
                                       'access_log "access.log"\n')) as s:
        log = site.path("access.log")
        assert curl(site.plain, "/r?first") == b"one\n"
        os.rename(log, log + ".1")
        assert ctl(site, "reopen") == (0, "")
        wait_log(s, "logs reopened")
        assert curl(site.plain, "/r?second") == b"one\n"
        deadline = time.monotonic() + 5
        while not os.path.exists(log) or "/r?second" not in open(log).read():
            assert time.monotonic() < deadline, "no new access log"
            time.sleep(0.05)
        old = open(log + ".1").read()
        assert "/r?first" in old and "/r?second" not in old, old


def test_signal_errors():
    with Site() as site:
        cfg = config(site, "one", "")
        assert ctl(site, "reload") == (1, "sluice: %s: no pid_file set\n" % cfg)
        # Named as given on the command line.
        rel = os.path.relpath(cfg)
        assert ctl(site, "reload", rel) == (1, "sluice: %s: no pid_file set\n" % rel)
        config(site, "one")
        pid = site.path("sluice.pid")
        assert ctl(site, "reload") == (1, "sluice: cannot read pid file %s: No such file or "
                                       "directory\n" % pid)
        site.write("sluice.pid", "\n")
        assert ctl(site, "stop") == (1, "sluice: pid file %s: no process id in it\n" % pid)
        site.write("sluice.pid", "12x\n")
        assert ctl(site, "stop") == (1, "sluice: pid file %s: no process id in it\n" % pid)
        site.write("sluice.pid", "0\n")
        assert ctl(site, "stop") == (1, "sluice: pid file %s: no process id in it\n" % pid)
        gone = subprocess.Popen(["true"])
        gone.wait()
        site.write("sluice.pid", "%d\n" % gone.pid)
        assert ctl(site, "reload") == (1, "sluice: pid file %s: process %d is not running "
                                       "(stale pid file?)\n" % (pid, gone.pid))
        rc, out = ctl(site, "restart")
        assert rc == 2 and out.startswith("sluice: -s restart: unknown signal (reload, stop, "
                                          "quit or reopen)\n"), (rc, out)
        # A config that does not load: the error, and no signal sent.
        victim = subprocess.Popen(["sleep", "30"])
        try:
            site.write("sluice.lua", 'pid_file "sluice.pid"\nworkers(0)\n')
            site.write("sluice.pid", "%d\n" % victim.pid)
            assert ctl(site, "stop") == (1, "sluice: %s:2: workers must be an integer in "
                                         "1..1024, got 0\n" % cfg)
            assert victim.poll() is None
            # -s with -t, or a stray argument, is a usage error.
            p = subprocess.run([Sluice.exe(), "-t", "-s", "stop", "-c", cfg],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
            assert p.returncode == 2 and b"usage:" in p.stderr, p.stderr
            p = subprocess.run([Sluice.exe(), "-c", cfg, "reload"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
            assert p.returncode == 2 and b"usage:" in p.stderr, p.stderr
            assert victim.poll() is None
        finally:
            victim.send_signal(signal.SIGKILL)
            victim.wait()


def test_reload_on_policy_file_change():
    """Saved in place or by rename, the policy file's change reloads config
    and policies (the config's new body shows); other files of its
    directory do not; a broken policy keeps the running configuration."""
    with Site() as site:
        pol = site.write("p.lua", "return {}\n")
        policy = 'policy { file = "p.lua", watch = true }\n'
        cfg = config(site, "one", policy)
        with Sluice(cfg) as s:
            assert curl(site.plain) == b"one\n"
            config(site, "two", policy)  # seen only through the reload below
            time.sleep(0.3)
            assert curl(site.plain) == b"one\n"
            with open(pol, "a") as f:
                f.write("-- saved in place\n")
            wait_log(s, "reloaded %s (policy file p.lua changed)" % cfg)
            assert curl(site.plain) == b"two\n"
            # A burst of writes is one reload, after it.
            for i in range(5):
                with open(pol, "a") as f:
                    f.write("-- %d\n" % i)
            time.sleep(0.5)
            assert s.stderr().count("(policy file p.lua changed)") == 2, s.stderr()[-2000:]
            site.write("other.lua", "return {}\n")
            time.sleep(0.5)
            assert s.stderr().count("(policy file p.lua changed)") == 2, s.stderr()[-2000:]
            # An editor's save: a new file renamed over the old one.
            config(site, "three", policy)
            site.write("p.lua.tmp", "return { on_request = function(s, r)\n")
            os.rename(site.path("p.lua.tmp"), pol)
            line = open(cfg).read().splitlines().index(policy.strip()) + 1
            wait_log(s, "reload failed (policy file p.lua changed), keeping the running "
                     "configuration: %s:%d: policy: " % (cfg, line))
            assert curl(site.plain) == b"two\n"
            site.write("p.lua.tmp", "return {}\n")
            os.rename(site.path("p.lua.tmp"), pol)
            deadline = time.monotonic() + 5
            while curl(site.plain) != b"three\n":
                assert time.monotonic() < deadline, s.stderr()[-2000:]
                time.sleep(0.05)
            assert s.stderr().count("(policy file p.lua changed)") == 4, s.stderr()[-2000:]


if __name__ == "__main__":
    main(globals())
