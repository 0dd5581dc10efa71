-- A sealed poll's audit file in its own table, beside its seal's line (docs/polls.md, "Receipts
-- and the sealed result"). In `poll_seals` the file stood before `voters` (added by 0023 at the
-- row's end): on SQLite, reading a seal's line then walked the file's overflow pages to reach
-- `voters`, some 80 MB for a million votes, on each read of a closed poll's results (p99 over
-- 100 ms at 1,000,000 votes, docs/benchmarks-history.md). The line is now a few index-sized
-- columns; the file is read only for `/polls/{id}/audit.csv` and `pollstr verify-poll`.
CREATE TABLE poll_audit_files (
    question_id BIGINT PRIMARY KEY REFERENCES poll_seals (question_id) ON DELETE CASCADE,
    body TEXT NOT NULL
);
INSERT INTO poll_audit_files (question_id, body) SELECT question_id, body FROM poll_seals;
ALTER TABLE poll_seals DROP COLUMN body;
