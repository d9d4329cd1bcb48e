-- browser.lua — browser-style priorities (RFC 9218): what blocks rendering
-- first, images interleaved so every one shows early, the rest in between.
--
-- Browsers send their own `priority` header; a route or this policy only
-- decides for clients that do not (and for RFC 7540-only clients, whose
-- weights are mapped to urgencies by sluice itself).

local by_ext = {
  html = { 0, false }, htm = { 0, false },
  css  = { 1, false },
  js   = { 2, false }, mjs = { 2, false },
  woff2 = { 2, false }, woff = { 2, false },
  json = { 3, false },
  png  = { 5, true }, jpg = { 5, true }, jpeg = { 5, true }, gif = { 5, true },
  webp = { 5, true }, avif = { 5, true }, svg = { 4, false },
  mp4  = { 6, true }, webm = { 6, true },
  zip  = { 7, false }, tar = { 7, false }, gz = { 7, false },
}

function on_request(stream, req)
  if req:header("priority") then
    return -- the client said what it wants: RFC 9218 §4
  end
  local path = req.path
  local ext = path:match("%.(%w+)$") or path:match("%.(%w+)%?")
  if not ext and path:sub(-1) == "/" then
    ext = "html"
  end
  local p = ext and by_ext[ext:lower()]
  if p then
    stream:priority(p[1], p[2])
    stream:tag("u", tostring(p[1]))
  end
end
