-- ab_a.lua — side A of an A/B test (see ab_b.lua): sluice loads both files
-- and gives each connection one of them by a hash of the client address
-- (config: policy { files = { "ab_a.lua", "ab_b.lua" }, split = "client_hash" }).
-- A: images as incremental u=5, the page marked for the analytics.

function on_request(stream, req)
  stream:tag("ab", "a")
  if req.path:match("%.png$") or req.path:match("%.jpe?g$") then
    stream:priority(5, true)
  end
end

function on_response(stream, res)
  res:set("x-ab", "a")
  shared.ab_a = (shared.ab_a or 0) + 1
end
