-- GET the URL given to wrk as verified users: each request carries the next session cookie of
-- $BENCH_SESSIONS (username, cookie, csrf token per line); every answer must be $BENCH_EXPECT.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

local requests = {}
local i = 0

function init(args)
   for _, s in ipairs(read_tsv(os.getenv("BENCH_SESSIONS"))) do
      table.insert(requests, wrk.format("GET", nil, { ["Cookie"] = "pollstr_session=" .. s[2] }))
   end
   i = tid * 997  -- threads start at different users
end

function request()
   i = i % #requests + 1
   return requests[i]
end

function response(status, headers, body)
   expect(status)
end
