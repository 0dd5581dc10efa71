-- Each session row names its user, and each user has a session epoch, so that a password
-- change (and later "log out everywhere") can end all of a user's sessions at once, and a
-- session being created as they end (a login racing the change) is not written: the session
-- store inserts a signed-in session only while the epoch it carries is the user's
-- (db::session_store). The table is tower-sessions' own, created here first so that it can
-- gain the column (the store's own `create table if not exists` then does nothing).
CREATE SCHEMA IF NOT EXISTS "tower_sessions";
CREATE TABLE IF NOT EXISTS "tower_sessions"."session" (
    id TEXT PRIMARY KEY NOT NULL,
    data BYTEA NOT NULL,
    expiry_date TIMESTAMPTZ NOT NULL
);
ALTER TABLE "tower_sessions"."session" ADD COLUMN user_id BIGINT;
CREATE INDEX session_user_idx ON "tower_sessions"."session" (user_id);
ALTER TABLE users ADD COLUMN session_epoch BIGINT NOT NULL DEFAULT 0;
