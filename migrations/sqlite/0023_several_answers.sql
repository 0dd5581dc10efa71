-- Polls with several answers (docs/polls.md, "Several answers").
-- max_choices: how many choices a voter may pick (1: one, as before).
ALTER TABLE questions ADD COLUMN max_choices BIGINT NOT NULL DEFAULT 1 CHECK (max_choices >= 1);

-- A voter's selection is their rows on the question, one per choice, numbered by `slot` from 0
-- (a one-answer vote is the row at slot 0, as every vote before this migration). Voting again
-- rewrites the slots and removes those past the new selection, in one transaction.
-- SQLite cannot change a primary key in place: the table is built again (its count triggers
-- with it; the trigger on choices that reads it is dropped meanwhile, or the rename would fail).
DROP TRIGGER choices_keep_their_votes;
CREATE TABLE votes_new (
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    question_id BIGINT NOT NULL REFERENCES questions (id) ON DELETE CASCADE,
    slot BIGINT NOT NULL DEFAULT 0,
    choice_id BIGINT NOT NULL REFERENCES choices (id) ON DELETE CASCADE,
    voted_at BIGINT NOT NULL,
    receipt_hash TEXT,
    PRIMARY KEY (user_id, question_id, slot)
);
INSERT INTO votes_new (user_id, question_id, slot, choice_id, voted_at, receipt_hash)
SELECT user_id, question_id, 0, choice_id, voted_at, receipt_hash FROM votes;
DROP TABLE votes;
ALTER TABLE votes_new RENAME TO votes;
CREATE INDEX votes_choice_idx ON votes (choice_id);

CREATE TRIGGER choices_keep_their_votes BEFORE UPDATE OF question_id ON choices
WHEN NEW.question_id <> OLD.question_id
    AND EXISTS (SELECT 1 FROM votes WHERE choice_id = OLD.id)
BEGIN
    SELECT RAISE(ABORT, 'a choice with votes cannot move to another poll');
END;

-- choice_counts.voters: the rows at slot 0 among a choice's votes (one per voter). Summed over
-- a poll's choices it is the poll's number of voters, kept as the votes are, in the same
-- counter rows (no more rows to update per vote).
ALTER TABLE choice_counts ADD COLUMN voters BIGINT NOT NULL DEFAULT 0;
UPDATE choice_counts SET voters = votes;

CREATE TRIGGER votes_counted_insert AFTER INSERT ON votes
BEGIN
    INSERT INTO choice_counts (choice_id, shard, votes, voters) VALUES (NEW.choice_id, 0, 1, NEW.slot = 0)
    ON CONFLICT (choice_id, shard) DO UPDATE SET votes = votes + 1, voters = voters + excluded.voters;
END;

CREATE TRIGGER votes_counted_update AFTER UPDATE OF choice_id ON votes
WHEN OLD.choice_id IS NOT NEW.choice_id
BEGIN
    UPDATE choice_counts SET votes = votes - 1, voters = voters - (OLD.slot = 0)
    WHERE choice_id = OLD.choice_id AND shard = 0;
    INSERT INTO choice_counts (choice_id, shard, votes, voters) VALUES (NEW.choice_id, 0, 1, NEW.slot = 0)
    ON CONFLICT (choice_id, shard) DO UPDATE SET votes = votes + 1, voters = voters + excluded.voters;
END;

CREATE TRIGGER votes_counted_delete AFTER DELETE ON votes
BEGIN
    UPDATE choice_counts SET votes = votes - 1, voters = voters - (OLD.slot = 0)
    WHERE choice_id = OLD.choice_id AND shard = 0;
END;

-- A sealed poll's number of voters (its audit file has a line per chosen choice). NULL: sealed
-- before this migration, one line per voter.
ALTER TABLE poll_seals ADD COLUMN voters BIGINT;
