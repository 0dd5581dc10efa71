-- Each choice's vote count, kept up to date by triggers on `votes` in the same transaction as
-- the vote row, so a poll page reads a few rows however many votes a poll has, and the counts
-- cannot disagree with the rows (votes cast, changed, imported, or deleted with their poll,
-- choice or user). A choice's count is base_votes + SUM(votes) of its rows here.
--
-- A choice's count is spread over up to 16 rows (shard = user_id % 16): concurrent voters on a
-- popular choice update different rows instead of queueing on one row lock until their commit.
-- `pollstr recount` recomputes this table from the vote rows.
CREATE TABLE choice_counts (
    choice_id BIGINT NOT NULL REFERENCES choices (id) ON DELETE CASCADE,
    shard SMALLINT NOT NULL,
    votes BIGINT NOT NULL,
    PRIMARY KEY (choice_id, shard)
);

INSERT INTO choice_counts (choice_id, shard, votes)
SELECT choice_id, user_id % 16, COUNT(*) FROM votes GROUP BY choice_id, user_id % 16;

-- A decrement is an UPDATE, never an insert: when a choice is deleted its votes go by cascade,
-- and an insert for that choice would break the foreign key. A changed vote moves between two
-- rows of the same shard, taken in choice order so that two voters swapping choices cannot
-- deadlock.
CREATE FUNCTION count_vote() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO choice_counts (choice_id, shard, votes) VALUES (NEW.choice_id, NEW.user_id % 16, 1)
        ON CONFLICT (choice_id, shard) DO UPDATE SET votes = choice_counts.votes + 1;
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE choice_counts SET votes = votes - 1
        WHERE choice_id = OLD.choice_id AND shard = OLD.user_id % 16;
    ELSIF OLD.choice_id < NEW.choice_id THEN
        UPDATE choice_counts SET votes = votes - 1
        WHERE choice_id = OLD.choice_id AND shard = OLD.user_id % 16;
        INSERT INTO choice_counts (choice_id, shard, votes) VALUES (NEW.choice_id, NEW.user_id % 16, 1)
        ON CONFLICT (choice_id, shard) DO UPDATE SET votes = choice_counts.votes + 1;
    ELSE
        INSERT INTO choice_counts (choice_id, shard, votes) VALUES (NEW.choice_id, NEW.user_id % 16, 1)
        ON CONFLICT (choice_id, shard) DO UPDATE SET votes = choice_counts.votes + 1;
        UPDATE choice_counts SET votes = votes - 1
        WHERE choice_id = OLD.choice_id AND shard = OLD.user_id % 16;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER votes_counted_insert AFTER INSERT ON votes
    FOR EACH ROW EXECUTE FUNCTION count_vote();
CREATE TRIGGER votes_counted_update AFTER UPDATE OF choice_id ON votes
    FOR EACH ROW WHEN (OLD.choice_id IS DISTINCT FROM NEW.choice_id) EXECUTE FUNCTION count_vote();
CREATE TRIGGER votes_counted_delete AFTER DELETE ON votes
    FOR EACH ROW EXECUTE FUNCTION count_vote();
