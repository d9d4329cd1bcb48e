-- upstream.lua — the small HTTP/1.1 (and h2c) server the run command starts
-- beside sluice, so the example's /app/ route has something to proxy to: a
-- second sluice process, plain text on 127.0.0.1:8081 only.
listen { "127.0.0.1:8081" }
route { path = "/app/echo", echo = true }           -- the proxied request, sent back
route { path = "/app/files", static = "site" }      -- /app/files/hello.txt
route { path = "/app", ret = { status = 200, body = "hello from the upstream behind sluice\n" } }
route { path = "/health", ret = { status = 200, body = "ok\n" } }
workers(1)
pid_file "/tmp/sluice-example-upstream.pid"
