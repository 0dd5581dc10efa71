-- An authenticator app (TOTP, RFC 6238) as a user's second factor (src/two_factor/totp/). The
-- secret is sealed with POLLSTR_SECRET_KEY for "totp:<user_id>" (src/crypto.rs); last_step is
-- the last 30-second step whose code was accepted, so each code is accepted once.
CREATE TABLE totp_factors (
    user_id BIGINT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    secret TEXT NOT NULL,
    last_step BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
