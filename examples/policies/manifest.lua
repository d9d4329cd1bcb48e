-- manifest.lua — Early Hints and push of each page's critical assets, from
-- a manifest kept in the policy, and push of what an upstream's `link:
-- rel=preload` response fields name.
--
-- 103 Early Hints go to every client (browsers preload from them); push
-- only where the connection allows it (sluice checks the client's
-- SETTINGS_ENABLE_PUSH) and not to clients that said they have the assets
-- (the cookie `assets=v3` set below), since pushing what is cached wastes
-- the link.

local version = "v3"
local manifest = {
  ["/"] = { "/css/site.css", "/js/app.js" },
  ["/index.html"] = { "/css/site.css", "/js/app.js" },
  ["/docs/"] = { "/css/site.css", "/css/docs.css" },
}

local function kind(path)
  if path:match("%.css$") then return "style" end
  if path:match("%.m?js$") then return "script" end
  if path:match("%.woff2?$") then return "font" end
  return "fetch"
end

function on_request(stream, req)
  local page = req.path:match("^[^?]*")
  local assets = manifest[page]
  if not assets or req.method ~= "GET" then
    return
  end
  local links = {}
  for i, a in ipairs(assets) do
    links[i] = "<" .. a .. ">; rel=preload; as=" .. kind(a)
  end
  stream:hint(links)
  local cookie = req:header("cookie") or ""
  if not cookie:find("assets=" .. version, 1, true) then
    for _, a in ipairs(assets) do
      stream:push(a)
    end
  end
end

function on_response(stream, res)
  if res.status == 200 and manifest[(res.path or ""):match("^[^?]*")] then
    res:add("set-cookie", "assets=" .. version .. "; Path=/; Max-Age=86400")
  end
  -- An upstream's preload links: push them too (same authority only).
  local link = res:header("link")
  if link and res.status == 200 then
    for target in link:gmatch("<(/[^>]*)>%s*;[^,]*rel=preload") do
      stream:push(target)
    end
  end
end
