-- typical.lua — the "typical policy" of the hook-cost benchmark: read a
-- header and the path, match the extension, set a response header and
-- bump a shared counter.

local cache = { css = "public, max-age=31536000", js = "public, max-age=31536000",
                png = "public, max-age=86400", html = "no-cache" }

function on_request(stream, req)
  local ua = req:header("user-agent")
  local ext = req.path:match("%.(%a+)$")
  if ua and ext == "css" then
    stream:priority(1)
  end
end

function on_response(stream, res)
  local ext = res.path:match("%.(%a+)$")
  res:set("cache-control", cache[ext] or "no-store")
  shared.hits = (shared.hits or 0) + 1
end
