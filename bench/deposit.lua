-- wrk script: POST /accounts/<id>/deposits with {"amount":"1.00"}, each request carrying the
-- Bearer token of that account's owner.
--   wrk -t N ... -s bench/deposit.lua URL -- <accounts file> [random|sequential] [offset] [N]
-- The accounts file has one "<account id> <token>" per line. "random" (the default) spreads the
-- load uniformly over the accounts; "sequential" walks them in order from <offset> (thread k of n
-- takes offset + k, offset + k + n, ...), to touch every account once.
-- done() prints one line "BENCH_JSON {...}" with the figures the bench reads, among them every
-- 0.1th percentile of the latency ("quantiles_us").

local threads = {}
local requests = {}
counter = 0 -- global: done() reads it from each thread
local mode = "random"
local offset = 0
local nthreads = 1

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(args[1]) do
    local id, token = line:match("^(%S+)%s+(%S+)$")
    if id then
      local headers = {
        ["Authorization"] = "Bearer " .. token,
        ["Content-Type"] = "application/json",
      }
      table.insert(requests, wrk.format("POST", "/accounts/" .. id .. "/deposits", headers,
                                        '{"amount":"1.00"}'))
    end
  end
  mode = args[2] or "random"
  offset = tonumber(args[3] or "0")
  nthreads = tonumber(args[4] or "1")
  math.randomseed(os.time() * 1000 + (id or 0))
end

function request()
  counter = counter + 1
  if mode == "sequential" then
    local index = offset + (id or 0) + (counter - 1) * nthreads
    return requests[(index % #requests) + 1]
  end
  return requests[math.random(#requests)]
end

function done(summary, latency, requests_)
  local issued = {}
  for _, thread in ipairs(threads) do
    table.insert(issued, tostring(thread:get("counter")))
  end
  -- Every 0.1th percentile, so that several wrk runs' latencies can be merged (bench/scaling.py).
  local quantiles = {}
  for k = 1, 1000 do
    table.insert(quantiles, tostring(latency:percentile(k / 10)))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, ' ..
    '"p99_us": %d, "max_us": %d, "mean_us": %.1f, "connect_errors": %d, "read_errors": %d, ' ..
    '"write_errors": %d, "status_errors": %d, "timeouts": %d, "issued": [%s], ' ..
    '"quantiles_us": [%s]}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean, e.connect, e.read, e.write, e.status,
    e.timeout, table.concat(issued, ", "), table.concat(quantiles, ", ")))
end
