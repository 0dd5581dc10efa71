-- Each choice's vote count, kept up to date by triggers on `votes` in the same transaction as
-- the vote rows, so a poll page reads a few rows however many votes a poll has, and the counts
-- cannot disagree with the rows (votes cast, changed, imported, or deleted with their poll,
-- choice or user). A choice's count is base_votes + SUM(votes) of its rows here.
--
-- A choice's count is spread over up to 16 rows (shard = user_id % 16): concurrent voters on a
-- popular choice update different rows instead of queueing on one row lock until their commit
-- (64 connections voting on one poll: 3.4k votes/s with one row per choice, 8–10k with 16).
-- `pollstr recount` recomputes this table from the vote rows.
CREATE TABLE choice_counts (
    choice_id BIGINT NOT NULL REFERENCES choices (id) ON DELETE CASCADE,
    shard SMALLINT NOT NULL,
    votes BIGINT NOT NULL,
    PRIMARY KEY (choice_id, shard)
);

INSERT INTO choice_counts (choice_id, shard, votes)
SELECT choice_id, user_id % 16, COUNT(*) FROM votes GROUP BY choice_id, user_id % 16;

-- The triggers are per statement, over its transition tables: a statement that writes many
-- votes (an import, a bulk load, a cascade) adjusts each counter row once, where a per-row
-- trigger would update the same row again for every vote, and PostgreSQL walks all the
-- versions of a row updated earlier in the same transaction: quadratic time. Rows are taken in
-- (choice, shard) order, so that two statements cannot deadlock on them.

CREATE FUNCTION count_inserted_votes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO choice_counts (choice_id, shard, votes)
    SELECT choice_id, user_id % 16, COUNT(*) FROM new_votes
    GROUP BY choice_id, user_id % 16 ORDER BY 1, 2
    ON CONFLICT (choice_id, shard) DO UPDATE SET votes = choice_counts.votes + excluded.votes;
    RETURN NULL;
END
$$;

-- A changed vote: -1 on the old choice, +1 on the new one, in one statement. Both choices
-- exist (a choice's deletion removes its votes, never updates them), so the upsert's insert
-- cannot break the foreign key.
CREATE FUNCTION count_changed_votes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO choice_counts (choice_id, shard, votes)
    SELECT choice_id, shard, SUM(delta) FROM (
        SELECT o.choice_id, o.user_id % 16 AS shard, -1 AS delta
        FROM old_votes o JOIN new_votes n ON n.user_id = o.user_id AND n.question_id = o.question_id
        WHERE n.choice_id <> o.choice_id
        UNION ALL
        SELECT n.choice_id, n.user_id % 16, 1
        FROM old_votes o JOIN new_votes n ON n.user_id = o.user_id AND n.question_id = o.question_id
        WHERE n.choice_id <> o.choice_id
    ) d GROUP BY choice_id, shard HAVING SUM(delta) <> 0 ORDER BY 1, 2
    ON CONFLICT (choice_id, shard) DO UPDATE SET votes = choice_counts.votes + excluded.votes;
    RETURN NULL;
END
$$;

-- A decrement is an UPDATE, never an insert: when a choice is deleted its votes go by cascade,
-- and an insert for that choice would break the foreign key.
CREATE FUNCTION count_deleted_votes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE choice_counts c SET votes = c.votes - d.n
    FROM (SELECT choice_id, user_id % 16 AS shard, COUNT(*) AS n FROM old_votes
          GROUP BY choice_id, user_id % 16 ORDER BY 1, 2) d
    WHERE c.choice_id = d.choice_id AND c.shard = d.shard;
    RETURN NULL;
END
$$;

CREATE TRIGGER votes_counted_insert AFTER INSERT ON votes
    REFERENCING NEW TABLE AS new_votes
    FOR EACH STATEMENT EXECUTE FUNCTION count_inserted_votes();
CREATE TRIGGER votes_counted_update AFTER UPDATE ON votes
    REFERENCING OLD TABLE AS old_votes NEW TABLE AS new_votes
    FOR EACH STATEMENT EXECUTE FUNCTION count_changed_votes();
CREATE TRIGGER votes_counted_delete AFTER DELETE ON votes
    REFERENCING OLD TABLE AS old_votes
    FOR EACH STATEMENT EXECUTE FUNCTION count_deleted_votes();
