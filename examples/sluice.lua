-- sluice.lua — example configuration for the `sluice` host: the README's run
-- command serves examples/site/ with it over TLS (h2, HTTP/1.1) and h2c.
--
-- A config is a Lua 5.4 file whose calls declare what sluice does; every
-- error names the file and line of the declaration at fault. Relative paths
-- are relative to this file. `sluice -t -c examples/sluice.lua` checks it.
-- doc/config.md describes every directive.

-- TLS on 8443: ALPN picks h2 or HTTP/1.1.
listen { "0.0.0.0:8443", tls = true }

-- Plain text on 8080: HTTP/2 with prior knowledge (h2c) and HTTP/1.1 on the
-- same port, told apart by the first bytes the client sends.
listen { "0.0.0.0:8080" }

-- A self-signed certificate that the run command makes (keys are never
-- committed):
--   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
--     -days 30 -subj /CN=localhost \
--     -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
--     -keyout examples/certs/sluice.key -out examples/certs/sluice.pem
-- Without `names`, the names it serves come from its subjectAltName.
tls_certificate { cert = "certs/sluice.pem", key = "certs/sluice.key" }

-- Routes: each matches a path prefix (and optionally an authority).
route { path = "/echo", echo = true }              -- the request, sent back
route { path = "/health", ret = { status = 200, body = "ok\n" } }
route { path = "/", static = "site" }              -- examples/site/index.html

-- Reverse proxy: /app/ goes to the upstream the run command starts beside
-- sluice (examples/upstream.lua on 127.0.0.1:8081), over keep-alive HTTP/1.1
-- connections; the path is passed unchanged. A dead server is skipped for
-- fail_timeout; health_check probes it in the background.
upstream { name = "app", servers = { "127.0.0.1:8081" }, keepalive = 16,
           connect_timeout = 2, read_timeout = 30,
           health_check = { path = "/health", interval = 5 } }
route { path = "/app", proxy = "app" }

workers(1)
access_log "-"                                     -- one line per request, on stderr
admin { listen = "127.0.0.1:9180" }                -- Prometheus metrics at /metrics

-- Everything below repeats a default, to show the knobs.
timeouts { handshake = 10, preface = 10, idle = 60, header = 10, send = 30,
           drain = 30, close_wait = 2, linger = 5 }
http2 { max_concurrent_streams = 100, initial_window_size = 65535,
        connection_window = 1048576, max_header_list_size = 65536,
        rst_received = { 200, 50 } }
max_body "16m"
