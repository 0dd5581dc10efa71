-- Each choice's vote count, kept up to date by triggers on `votes` in the same transaction as
-- the vote row, so a poll page reads a few rows however many votes a poll has, and the counts
-- cannot disagree with the rows (votes cast, changed, imported, or deleted with their poll,
-- choice or user). A choice's count is base_votes + SUM(votes) of its rows here.
--
-- On SQLite one row per choice (shard 0): there is one writer at a time, so nothing queues on
-- a row lock. PostgreSQL spreads a count over 16 rows. `pollstr recount` recomputes this table
-- from the vote rows.
CREATE TABLE choice_counts (
    choice_id BIGINT NOT NULL REFERENCES choices (id) ON DELETE CASCADE,
    shard SMALLINT NOT NULL,
    votes BIGINT NOT NULL,
    PRIMARY KEY (choice_id, shard)
) WITHOUT ROWID;

INSERT INTO choice_counts (choice_id, shard, votes)
SELECT choice_id, 0, COUNT(*) FROM votes GROUP BY choice_id;

-- A decrement is an UPDATE, never an insert: when a choice is deleted its votes go by cascade,
-- and an insert for that choice would break the foreign key.
CREATE TRIGGER votes_counted_insert AFTER INSERT ON votes
BEGIN
    INSERT INTO choice_counts (choice_id, shard, votes) VALUES (NEW.choice_id, 0, 1)
    ON CONFLICT (choice_id, shard) DO UPDATE SET votes = votes + 1;
END;

CREATE TRIGGER votes_counted_update AFTER UPDATE OF choice_id ON votes
WHEN OLD.choice_id IS NOT NEW.choice_id
BEGIN
    UPDATE choice_counts SET votes = votes - 1 WHERE choice_id = OLD.choice_id AND shard = 0;
    INSERT INTO choice_counts (choice_id, shard, votes) VALUES (NEW.choice_id, 0, 1)
    ON CONFLICT (choice_id, shard) DO UPDATE SET votes = votes + 1;
END;

CREATE TRIGGER votes_counted_delete AFTER DELETE ON votes
BEGIN
    UPDATE choice_counts SET votes = votes - 1 WHERE choice_id = OLD.choice_id AND shard = 0;
END;
