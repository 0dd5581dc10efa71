-- Trusted browsers (src/two_factor/trusted/): a browser that passed the second factor with
-- "Trust this browser" skips it at login until expires_at. The browser keeps a random token in
-- a cookie; only its keyed hash is here, bound to the user.
CREATE TABLE trusted_browsers (
    token_hash TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    label TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX trusted_browsers_user_idx ON trusted_browsers (user_id);
