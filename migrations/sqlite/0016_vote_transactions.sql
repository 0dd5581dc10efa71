-- PostgreSQL's twin records which transaction wrote each vote row, so that many instances
-- can keep poll counts in memory (polls::prefetch). SQLite has one server process, which
-- keeps its caches right as each vote commits: nothing to record here.
SELECT 1;
