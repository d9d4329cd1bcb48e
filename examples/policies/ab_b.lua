-- ab_b.lua — side B of the A/B test in ab_a.lua: images sequential at u=4,
-- so each arrives whole before the next.

function on_request(stream, req)
  stream:tag("ab", "b")
  if req.path:match("%.png$") or req.path:match("%.jpe?g$") then
    stream:priority(4, false)
  end
end

function on_response(stream, res)
  res:set("x-ab", "b")
  shared.ab_b = (shared.ab_b or 0) + 1
end
