-- Limit events are reserved before the work they guard and may be taken back (a right password
-- or code): by rowid on SQLite (PostgreSQL adds an id column). Nothing to change here; the file
-- keeps the two migration folders in step.
SELECT 1;
