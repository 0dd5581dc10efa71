-- The staff admin (src/admin/).
-- The order of a poll's choices, set by reordering them in the admin: pages list choices by
-- position, then id (choices that were never reordered, such as those a fixture loads, keep 0
-- and their id order).
ALTER TABLE choices ADD COLUMN position BIGINT NOT NULL DEFAULT 0;

-- Each admin form carries a one-time token, written in the transaction that saves it: a form
-- sent twice (a double click, a reload that posts again) saves once, and the second answer
-- leads to what the first saved (`result`, a path). Rows older than a day are deleted.
CREATE TABLE admin_submissions (
    token TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL,
    at BIGINT NOT NULL,
    result TEXT NOT NULL
);
CREATE INDEX admin_submissions_at_idx ON admin_submissions (at);
