-- ip_limit.lua — a per-client-address bound on concurrent streams and on
-- request rate, shared by all of the address's connections (per worker).
--
-- Each connection of an address gets an equal part of max_streams as its
-- SETTINGS_MAX_CONCURRENT_STREAMS; requests beyond rate_per_sec (burst
-- `burst`) get 429.

local max_streams = 32
local rate_per_sec = 50
local burst = 100

function on_connection(conn)
  local key = "conns:" .. conn.ip
  local n = (shared[key] or 0) + 1
  shared[key] = n
  conn:settings{ max_concurrent_streams = math.max(1, max_streams // n) }
end

function on_close(conn, st)
  local key = "conns:" .. conn.ip
  local n = (shared[key] or 1) - 1
  shared[key] = n > 0 and n or nil
end

-- A token bucket per address, in `shared`.
function on_request(stream, req)
  local ip = stream.conn.ip
  local now = sluice.now()
  local tk, tt = "tokens:" .. ip, "time:" .. ip
  local tokens = shared[tk] or burst
  local last = shared[tt] or now
  tokens = math.min(burst, tokens + (now - last) * rate_per_sec)
  if tokens < 1 then
    shared[tk], shared[tt] = tokens, now
    stream:respond(429, "too many requests\n")
    stream:tag("limited", "rate")
    return
  end
  shared[tk], shared[tt] = tokens - 1, now
end
