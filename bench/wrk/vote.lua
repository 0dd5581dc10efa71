-- POST /polls/1/vote/ as many verified users ($BENCH_SESSIONS: username, cookie, csrf token).
-- Thread t votes for the users whose index is t modulo $BENCH_THREADS, in turn, never for a user
-- whose previous vote is still unanswered (so each user's votes are strictly one after another).
-- A user's r-th vote is for choice number (user + r) of $BENCH_CHOICES, so re-votes change it.
-- Each request carries X-Request-Id "vote-<user>-<r>", which Pollstr echoes in the response: that
-- is how each answer is matched to its vote. done() writes, to $BENCH_ACKS, per user: username,
-- votes sent, last acknowledged vote (answered 303), and the choices of the votes from that last
-- acknowledged one to the last sent (the database must hold one of those; exactly the
-- acknowledged one when no later vote was left unanswered when wrk stopped).
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

local users = {}
local choices = {}
mine, sent, acked = {}, {}, {}   -- thread state, read back by done()
local busy = {}
local pos = 0
-- wrk calls request() once in thread 0 before the run, to check the request, and never sends
-- that one: it must not count as a vote.
local dry_run = false

-- $BENCH_PICK (default 1): choices per vote, for a poll of several answers. A vote of k picks
-- the k choices from the one above on, sent as k `choice` fields; recorded as their ids in
-- ascending order joined by "+" (as bench/check_votes.py reads a selection's rows).
local pick = tonumber(os.getenv("BENCH_PICK") or "1")

local function choice_of(u, r)
   if pick == 1 then return choices[(u + r) % #choices + 1] end
   local picked = {}
   for k = 0, pick - 1 do table.insert(picked, tonumber(choices[(u + r + k) % #choices + 1])) end
   table.sort(picked)
   return table.concat(picked, "+")
end

-- The form's choice fields of the user's r-th vote.
local function fields_of(u, r)
   return "choice=" .. (choice_of(u, r):gsub("%+", "&choice="))
end

local function load_inputs()
   users = read_tsv(os.getenv("BENCH_SESSIONS"))
   for c in os.getenv("BENCH_CHOICES"):gmatch("%d+") do table.insert(choices, c) end
end

function init(args)
   load_inputs()
   dry_run = (tid == 0)
   for u = 1, #users do
      if (u - 1) % nthreads == tid then table.insert(mine, u) end
   end
end

function request()
   local u
   for _ = 1, #mine do
      pos = pos % #mine + 1
      if not busy[mine[pos]] then u = mine[pos]; break end
   end
   -- Every user busy: more connections than users (run.sh makes at least twice as many users).
   u = u or mine[pos]
   if dry_run then
      dry_run = false
      return wrk.format("POST", nil, nil, fields_of(u, 1))
   end
   local r = (sent[u] or 0) + 1
   sent[u] = r
   busy[u] = true
   return wrk.format("POST", nil, {
      ["Cookie"] = "pollstr_session=" .. users[u][2],
      ["Content-Type"] = "application/x-www-form-urlencoded",
      ["X-Request-Id"] = "vote-" .. u .. "-" .. r,
   }, fields_of(u, r) .. "&csrf_token=" .. users[u][3])
end

function response(status, headers, body)
   expect(status)
   local id = headers["x-request-id"] or headers["X-Request-Id"] or ""
   local u, r = id:match("^vote%-(%d+)%-(%d+)$")
   if not u then return end
   u, r = tonumber(u), tonumber(r)
   busy[u] = nil
   if status == 303 and r > (acked[u] or 0) then acked[u] = r end
end

function done(summary, latency, requests)
   load_inputs()
   local out = assert(io.open(os.getenv("BENCH_ACKS"), "w"))
   local voters, pending = 0, 0
   for _, t in ipairs(threads) do
      local t_sent, t_acked = t:get("sent"), t:get("acked")
      for _, u in pairs(t:get("mine")) do
         local s, a = t_sent[u] or 0, t_acked[u] or 0
         if s > 0 then
            local allowed = {}
            for r = math.max(a, 1), s do table.insert(allowed, choice_of(u, r)) end
            out:write(string.format("%s\t%d\t%d\t%s\n", users[u][1], s, a, table.concat(allowed, ",")))
            if a > 0 then voters = voters + 1 end
            if s > a then pending = pending + 1 end
         end
      end
   end
   out:close()
   report(summary, latency, string.format(" acked_voters=%d unanswered_at_stop=%d", voters, pending))
end
