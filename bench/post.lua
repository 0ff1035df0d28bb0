-- wrk script for bench/run.py: POST one image generation per request and print a JSON summary.
-- Settings come from the environment so one script serves the stub, the forwarder and the gateway:
--   BENCH_BODY      the JSON request body
--   BENCH_API_KEY   sent as X-API-Key (the gateway); absent for the stub and the forwarder
--   BENCH_PAUSE_MS  pause before each request on a connection (a fixed, modest load); 0 = closed loop
--   BENCH_RAMP_MS   spread the connections' first requests evenly over this many milliseconds,
--                   so a slow upstream sees a steady stream rather than waves of simultaneous requests
--   BENCH_CONNECTIONS, BENCH_THREADS  wrk's -c and -t (to place each connection in the ramp)
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-bench-upstream"
local api_key = os.getenv("BENCH_API_KEY")
if api_key and api_key ~= "" then
  wrk.headers["X-API-Key"] = api_key
end

local pause = tonumber(os.getenv("BENCH_PAUSE_MS") or "0")
local ramp = tonumber(os.getenv("BENCH_RAMP_MS") or "0")
local connections = tonumber(os.getenv("BENCH_CONNECTIONS") or "1")
local threads = tonumber(os.getenv("BENCH_THREADS") or "1")

local next_index = 0
function setup(thread)
  thread:set("thread_index", next_index)
  next_index = next_index + 1
end

local started = 0 -- first requests sent so far by this thread's connections
if pause > 0 or ramp > 0 then
  function delay()
    if ramp > 0 and started < connections / threads then
      -- wrk delays each connection's first request too: connection k of this thread starts at
      -- slot k * threads + thread_index of the ramp.
      local slot = started * threads + thread_index
      started = started + 1
      return math.floor(ramp * slot / connections)
    end
    return pause
  end
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"mean_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, errors.connect, errors.read, errors.write,
    errors.status, errors.timeout, latency:percentile(50), latency:percentile(99), latency.mean, latency.max))
end
