-- wrk script for the gateway benchmark. The request comes from the environment:
--   WRK_METHOD (GET), WRK_AUTHORIZATION, WRK_BODY_FILE (a JSON body to POST),
--   WRK_TARGETS_FILE (optional: lines "<authorization> <path>", taken in turn, each request
--   with its own Authorization and path).
-- done() prints one JSON line with the figures bench/overhead.py reads.

wrk.method = os.getenv("WRK_METHOD") or "GET"
wrk.headers["Authorization"] = os.getenv("WRK_AUTHORIZATION")
local body_file = os.getenv("WRK_BODY_FILE")
if body_file then
  local file = assert(io.open(body_file, "rb"))
  wrk.body = file:read("*a")
  file:close()
  wrk.headers["Content-Type"] = "application/json"
end

local targets_file = os.getenv("WRK_TARGETS_FILE")
if targets_file then
  local targets = {}
  for line in io.lines(targets_file) do
    local authorization, path = line:match("^(.-) (%S+)$")
    targets[#targets + 1] = {authorization = authorization, path = path}
  end
  local turn = 0
  function request()
    turn = turn % #targets + 1
    wrk.headers["Authorization"] = targets[turn].authorization
    return wrk.format(nil, targets[turn].path)
  end
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "socket_errors": %d, "non_2xx": %d, '
      .. '"p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration,
    errors.connect + errors.read + errors.write + errors.timeout, errors.status,
    latency:percentile(50), latency:percentile(99)))
end
