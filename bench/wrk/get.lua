-- GET the URL given to wrk, no cookie: the hello ceiling, the public poll list.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")
