-- empty.lua — hooks that do nothing: the benchmark's measure of what a
-- hook call itself costs.
function on_request(stream, req) end
function on_response(stream, res) end
