-- Password-reset links (src/users/reset.rs): a link made by an admin (or mailed to a confirmed
-- address) carries a random token; only its keyed hash is here, bound to the user, valid until
-- expires_at and used once (used_at). A password set or changed deletes the user's links.
-- Never dumped (src/fixtures).
CREATE TABLE password_reset_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX password_reset_tokens_user_idx ON password_reset_tokens (user_id);
