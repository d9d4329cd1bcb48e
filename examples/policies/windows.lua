-- windows.lua — flow-control windows and abuse budgets per client class:
-- the internal network gets large fixed windows and looser budgets; the
-- rest get adaptive windows, retuned from the measured RTT and rate.

local function internal(ip)
  return ip == "127.0.0.1" or ip == "::1" or ip:match("^10%.") ~= nil
      or ip:match("^192%.168%.") ~= nil
end

function on_connection(conn)
  if internal(conn.ip) then
    conn:window{ connection = 64 * 1024 * 1024, stream = 8 * 1024 * 1024 }
    conn:limits{ rst = { 2000, 500 }, ping = { 500, 100 }, settings = { 500, 100 } }
  else
    conn:window{ adaptive = true, min = 65535, max = 8 * 1024 * 1024,
                 connection_max = 32 * 1024 * 1024 }
  end
end

-- A high bandwidth-delay product client whose connection window is the
-- bottleneck gets twice the rate x RTT, within the adaptive maximum.
function on_window(conn, st)
  if not st.rtt or internal(conn.ip) then
    return
  end
  local bdp = st.recv_rate * st.rtt
  if bdp > 1024 * 1024 then
    local target = math.min(math.floor(bdp * 2), 32 * 1024 * 1024)
    conn:window{ connection = target }
    sluice.log("debug", "conn", conn.id, "rtt", st.rtt, "rate", st.recv_rate, "window", target)
  end
end
