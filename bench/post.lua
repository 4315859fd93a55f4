-- wrk script for bench/run.py: POST one task per request, stop after a fixed number of responses,
-- and print the run's figures as one JSON line (wrk's own text report rounds them).
--
-- Usage: wrk -t1 -cC -dCAP --latency -s post.lua URL -- QUOTA
-- QUOTA is the number of responses to wait for (0: run for wrk's -d instead). With one wrk thread
-- (-t1) it is the run's total. When it is reached the thread stops and sends wrk the SIGINT that
-- Ctrl-C would: wrk then ends at once (not at -d) and reports as usual. Requests still in flight
-- at that moment are abandoned: neither counted nor timed.

local ffi = require("ffi")
ffi.cdef [[
  int kill(int pid, int sig);
  int getpid(void);
]]
local SIGINT = 2

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"title": "Plan a team offsite", "description": "Two days, twenty people, one budget"}'

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  quota = tonumber(args[1]) or 0
  responses = 0
  non2xx = 0
  statuses = {}  -- non-2xx answers by status code, so an error count says what the errors were
end

function response(status, headers, body)
  responses = responses + 1
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    statuses[tostring(status)] = (statuses[tostring(status)] or 0) + 1
  end
  if quota > 0 and responses == quota then
    wrk.thread:stop()
    ffi.C.kill(ffi.C.getpid(), SIGINT)
  end
end

function done(summary, latency, requests)
  local non2xx_total = 0
  local by_status = {}
  for _, thread in ipairs(threads) do
    non2xx_total = non2xx_total + thread:get("non2xx")
    for code, count in pairs(thread:get("statuses")) do
      table.insert(by_status, string.format('"%s": %d', code, count))
    end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "non2xx": %d, "connect": %d, "read": %d, ' ..
    '"write": %d, "timeout": %d, "p50_us": %d, "p95_us": %d, "p99_us": %d, "max_us": %d, "statuses": {%s}}\n',
    summary.requests, summary.duration, non2xx_total, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max, table.concat(by_status, ", ")))
end
