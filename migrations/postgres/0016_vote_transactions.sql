-- Which transaction wrote each vote row as it is now, so that an instance may keep a poll's
-- counts in memory and still show a voter their own vote on the next request, wherever it
-- lands (polls::prefetch): the counts are kept with the snapshot they were read under, and
-- they are used for a voter only if that snapshot saw the voter's vote row as it is now
-- (`pg_visible_in_snapshot(xact, snapshot)`); otherwise the poll is read again.
--
-- New rows take the inserting transaction by default; a changed vote (the upsert's update, or
-- any other) takes its own through the trigger. Rows from before this migration keep NULL,
-- which counts as seen: every snapshot taken from now on sees them.
ALTER TABLE votes ADD COLUMN xact xid8;
ALTER TABLE votes ALTER COLUMN xact SET DEFAULT pg_current_xact_id();

CREATE FUNCTION stamp_changed_vote() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.xact := pg_current_xact_id();
    RETURN NEW;
END
$$;

CREATE TRIGGER votes_stamped_update BEFORE UPDATE ON votes
    FOR EACH ROW EXECUTE FUNCTION stamp_changed_vote();
