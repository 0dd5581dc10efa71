-- Vote receipts and sealed results (docs/polls.md, "Receipts and the sealed result").
-- receipt_hash: SHA-256 (lowercase hex) of the receipt shown once to the voter when this vote
--   was recorded; a changed vote gets a new one. Votes from before this migration have none.
ALTER TABLE votes ADD COLUMN receipt_hash TEXT;

-- A closed poll's seal, written with its close while the votes are held still: the audit
-- file exactly as published at /polls/{id}/audit.csv, its SHA-256 and the number of votes in
-- it. Reopening the poll removes it; the next close seals it again.
CREATE TABLE poll_seals (
    question_id BIGINT PRIMARY KEY REFERENCES questions (id) ON DELETE CASCADE,
    sealed_at BIGINT NOT NULL,
    votes BIGINT NOT NULL,
    digest TEXT NOT NULL,
    body TEXT NOT NULL
);
