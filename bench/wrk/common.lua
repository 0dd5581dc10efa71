-- Shared by the scenario scripts (wrk 4, LuaJIT). Each script starts with
--   dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")
--
-- Environment (set by bench/run.sh):
--   BENCH_RESULT   file that receives the summary line (key=value pairs)
--   BENCH_THREADS  wrk's -t, so each thread can take its own share of users or login pairs
--   BENCH_EXPECT   the status every response must have (checked only by scripts that call
--                  `expect`; wrk itself only counts statuses outside 2xx/3xx)

threads = {}      -- main state: every thread, in setup order
tid = 0           -- thread state: this thread's number, 0-based
nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")
wrong = 0         -- thread state: responses whose status was not BENCH_EXPECT

function setup(thread)
   thread:set("tid", #threads)
   table.insert(threads, thread)
end

-- Lines of a tab-separated file, each as a table of fields.
function read_tsv(path)
   local rows = {}
   for line in assert(io.open(path)):lines() do
      if line ~= "" then
         local fields = {}
         for field in line:gmatch("[^\t]+") do table.insert(fields, field) end
         table.insert(rows, fields)
      end
   end
   return rows
end

local expected = tonumber(os.getenv("BENCH_EXPECT") or "")
function expect(status)
   if expected and status ~= expected then wrong = wrong + 1 end
end

-- The summary line: requests/s, latency percentiles (ms), errors.
function report(summary, latency, extra)
   local e = summary.errors
   local secs = summary.duration / 1e6
   local checked = 0
   for _, t in ipairs(threads) do checked = checked + (t:get("wrong") or 0) end
   local line = string.format(
      "requests=%d seconds=%.2f rps=%.1f p50_ms=%.3f p99_ms=%.3f max_ms=%.3f " ..
      "non2xx3xx=%d unexpected_status=%d connect=%d read=%d write=%d timeout=%d%s",
      summary.requests, secs, summary.requests / secs,
      latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
      e.status, checked, e.connect, e.read, e.write, e.timeout, extra or "")
   local out = os.getenv("BENCH_RESULT")
   if out then
      local f = assert(io.open(out, "w"))
      f:write(line, "\n")
      f:close()
   end
   io.write(line, "\n")
end

function done(summary, latency, requests)
   report(summary, latency)
end
