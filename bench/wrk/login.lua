-- POST /login/ with the correct password, each request as its own fresh visitor: a line of
-- $BENCH_PAIRS is a ready form body (username, password, next, that visitor's csrf token) and
-- the visitor's Cookie header (the CSRF cookie), fetched beforehand with GET /login/. Each pair
-- is used once (each login starts a new session); thread t takes the lines t, t + $BENCH_THREADS, ...
-- Every answer must be 303 (a wrong password would be a 200 page, a stale token a 403).
-- If a thread runs out of pairs it stops early (reported as pairs_exhausted=1). (wrk's dry run of
-- request() before the start, in thread 0, uses up that thread's first pair without sending it.)
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

local mine = {}
local k = 0
exhausted = 0

function init(args)
   for n, p in ipairs(read_tsv(os.getenv("BENCH_PAIRS"))) do
      if (n - 1) % nthreads == tid then
         table.insert(mine, wrk.format("POST", nil, {
            ["Cookie"] = p[2],
            ["Content-Type"] = "application/x-www-form-urlencoded",
         }, p[1]))
      end
   end
end

function request()
   k = k + 1
   if k > #mine then
      exhausted = 1
      wrk.thread:stop()
      return wrk.format("GET", "/healthz")
   end
   return mine[k]
end

function response(status, headers, body)
   -- After the pairs ran out, the few /healthz fillers answer 200: not login failures.
   if not (exhausted == 1 and status == 200) then expect(status) end
end

function done(summary, latency, requests)
   local ex = 0
   for _, t in ipairs(threads) do ex = math.max(ex, t:get("exhausted") or 0) end
   report(summary, latency, " pairs_exhausted=" .. ex)
end
