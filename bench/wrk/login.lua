-- POST /login/ with the correct password, each request as its own fresh visitor: a line of
-- $BENCH_PAIRS is a ready form body (username, password, next, that visitor's csrf token) and
-- the visitor's Cookie header (the CSRF cookie), fetched beforehand with GET /login/. Each pair
-- is used once (each login starts a new session); thread t takes the lines t, t + $BENCH_THREADS, ...
-- Every answer must be 303 (a wrong password would be a 200 page, a stale token a 403).
-- If a thread runs out of pairs it stops early (reported as pairs_exhausted=1). (wrk's dry run of
-- request() before the start, in thread 0, uses up that thread's first pair without sending it.)
--
-- With BENCH_TURN_AWAY=1 (the storm), more logins are sent at once than the server's hash queue
-- holds: a 429 ("try again in a moment") is then an expected answer, counted as turned_away, and
-- the pairs are used round and round (a pair's CSRF cookie stays valid; each login still
-- starts a new session), so instant 429s cannot use them up.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

local mine = {}
local k = 0
local cycle = os.getenv("BENCH_TURN_AWAY") == "1"
exhausted = 0
turned_away = 0

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
   if cycle and k > #mine then k = 1 end
   if k > #mine then
      exhausted = 1
      wrk.thread:stop()
      return wrk.format("GET", "/healthz")
   end
   return mine[k]
end

function response(status, headers, body)
   if cycle and status == 429 then
      turned_away = turned_away + 1
      return
   end
   -- After the pairs ran out, the few /healthz fillers answer 200: not login failures.
   if not (exhausted == 1 and status == 200) then expect(status) end
end

function done(summary, latency, requests)
   local ex, away = 0, 0
   for _, t in ipairs(threads) do
      ex = math.max(ex, t:get("exhausted") or 0)
      away = away + (t:get("turned_away") or 0)
   end
   report(summary, latency, " pairs_exhausted=" .. ex .. " turned_away=" .. away)
end
