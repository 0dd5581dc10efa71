-- Polls with several answers (docs/polls.md, "Several answers").
-- max_choices: how many choices a voter may pick (1: one, as before).
ALTER TABLE questions ADD COLUMN max_choices BIGINT NOT NULL DEFAULT 1 CHECK (max_choices >= 1);

-- A voter's selection is their rows on the question, one per choice, numbered by `slot` from 0
-- (a one-answer vote is the row at slot 0, as every vote before this migration). Voting again
-- rewrites the slots and removes those past the new selection, in one transaction.
ALTER TABLE votes ADD COLUMN slot BIGINT NOT NULL DEFAULT 0;
ALTER TABLE votes DROP CONSTRAINT votes_pkey, ADD PRIMARY KEY (user_id, question_id, slot);

-- choice_counts.voters: the rows at slot 0 among a choice's votes (one per voter). Summed over
-- a poll's choices it is the poll's number of voters, kept as the votes are, in the same
-- counter rows and statements (no more rows to update per vote).
ALTER TABLE choice_counts ADD COLUMN voters BIGINT NOT NULL DEFAULT 0;
UPDATE choice_counts SET voters = votes;

CREATE OR REPLACE FUNCTION count_inserted_votes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO choice_counts (choice_id, shard, votes, voters)
    SELECT choice_id, user_id % 16, COUNT(*), SUM(CASE WHEN slot = 0 THEN 1 ELSE 0 END)
    FROM new_votes GROUP BY choice_id, user_id % 16 ORDER BY 1, 2
    ON CONFLICT (choice_id, shard) DO UPDATE SET votes = choice_counts.votes + excluded.votes,
        voters = choice_counts.voters + excluded.voters;
    RETURN NULL;
END
$$;

-- A changed vote: -1 on the old choice, +1 on the new one, matched by their key (user,
-- question, slot).
CREATE OR REPLACE FUNCTION count_changed_votes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO choice_counts (choice_id, shard, votes, voters)
    SELECT choice_id, shard, SUM(delta), SUM(CASE WHEN slot = 0 THEN delta ELSE 0 END) FROM (
        SELECT o.choice_id, o.user_id % 16 AS shard, o.slot, -1 AS delta
        FROM old_votes o JOIN new_votes n
          ON n.user_id = o.user_id AND n.question_id = o.question_id AND n.slot = o.slot
        WHERE n.choice_id <> o.choice_id
        UNION ALL
        SELECT n.choice_id, n.user_id % 16, n.slot, 1
        FROM old_votes o JOIN new_votes n
          ON n.user_id = o.user_id AND n.question_id = o.question_id AND n.slot = o.slot
        WHERE n.choice_id <> o.choice_id
    ) d GROUP BY choice_id, shard
    HAVING SUM(delta) <> 0 OR SUM(CASE WHEN slot = 0 THEN delta ELSE 0 END) <> 0 ORDER BY 1, 2
    ON CONFLICT (choice_id, shard) DO UPDATE SET votes = choice_counts.votes + excluded.votes,
        voters = choice_counts.voters + excluded.voters;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION count_deleted_votes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE choice_counts c SET votes = c.votes - d.n, voters = c.voters - d.firsts
    FROM (SELECT choice_id, user_id % 16 AS shard, COUNT(*) AS n,
                 SUM(CASE WHEN slot = 0 THEN 1 ELSE 0 END) AS firsts FROM old_votes
          GROUP BY choice_id, user_id % 16 ORDER BY 1, 2) d
    WHERE c.choice_id = d.choice_id AND c.shard = d.shard;
    RETURN NULL;
END
$$;

-- A sealed poll's number of voters (its audit file has a line per chosen choice). NULL: sealed
-- before this migration, one line per voter.
ALTER TABLE poll_seals ADD COLUMN voters BIGINT;
