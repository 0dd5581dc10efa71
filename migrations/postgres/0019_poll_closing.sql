-- Polls that end, and who sees their results (docs/polls.md).
-- closes_at: when the poll stops taking votes (set in the admin; none: it stays open).
-- closed_at: when its close was recorded, with the votes held still (staff's Close now, or
--   the first read of its results after closes_at passed): no vote is written after it, so
--   the counts read from then on are final. Reopening clears both.
-- results_visibility: who sees the results before the poll closes: 'always', 'voted' (those
--   who voted) or 'closed' (nobody but staff). Once closed, everyone who may vote sees them.
ALTER TABLE questions ADD COLUMN closes_at BIGINT;
ALTER TABLE questions ADD COLUMN closed_at BIGINT;
ALTER TABLE questions ADD COLUMN results_visibility TEXT NOT NULL DEFAULT 'always'
    CHECK (results_visibility IN ('always', 'voted', 'closed'));
