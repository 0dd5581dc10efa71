-- Email addresses (src/users/email.rs): users.email is the user's address (from the account
-- page, registration or a Django fixture's auth.user.email); it counts (is ever mailed) only
-- once email_confirmed is set by a confirmation link sent to it. A link names the address it
-- confirms; only its keyed hash is stored. One pending link per user: a new one replaces it.
ALTER TABLE users ADD COLUMN email_confirmed BOOLEAN NOT NULL DEFAULT FALSE;
CREATE TABLE email_confirmations (
    token_hash TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX email_confirmations_user_idx ON email_confirmations (user_id);
