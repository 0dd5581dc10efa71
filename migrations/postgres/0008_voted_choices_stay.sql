-- A choice with votes stays on its poll: moving it would leave its votes pointing at another
-- poll's choice. `loaddata` refuses such a file first, with a message naming the entry; this
-- holds whatever writes.
CREATE FUNCTION keep_voted_choices() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM votes WHERE choice_id = OLD.id) THEN
        RAISE EXCEPTION 'a choice with votes cannot move to another poll'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER choices_keep_their_votes BEFORE UPDATE OF question_id ON choices
FOR EACH ROW WHEN (NEW.question_id <> OLD.question_id)
EXECUTE FUNCTION keep_voted_choices();
