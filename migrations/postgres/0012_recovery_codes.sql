-- Recovery codes (src/two_factor/recovery/): ten single-use codes per user, kept as keyed hashes
-- (HMAC-SHA-256 under POLLSTR_SECRET_KEY, src/crypto.rs), each used at most once.
CREATE TABLE recovery_codes (
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    used_at BIGINT,
    PRIMARY KEY (user_id, code_hash)
);
