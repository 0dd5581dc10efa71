-- A choice with votes stays on its poll: moving it would leave its votes pointing at another
-- poll's choice. `loaddata` refuses such a file first, with a message naming the entry; this
-- holds whatever writes.
CREATE TRIGGER choices_keep_their_votes BEFORE UPDATE OF question_id ON choices
WHEN NEW.question_id <> OLD.question_id
    AND EXISTS (SELECT 1 FROM votes WHERE choice_id = OLD.id)
BEGIN
    SELECT RAISE(ABORT, 'a choice with votes cannot move to another poll');
END;
