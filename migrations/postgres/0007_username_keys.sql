-- Usernames are compared by a Unicode key (NFKC, case-folded) and refused when they look like
-- another (a confusables skeleton), computed by the app (accounts::validation) so that both
-- backends agree. Rows from before this migration are filled in by the app at start-up
-- (accounts::users::fill_username_keys); until then they are NULL, which unique indexes allow.
ALTER TABLE users ADD COLUMN username_key TEXT;
ALTER TABLE users ADD COLUMN username_skeleton TEXT;
CREATE UNIQUE INDEX users_username_key ON users (username_key);
CREATE UNIQUE INDEX users_username_skeleton ON users (username_skeleton);
DROP INDEX users_username_lower_key;
