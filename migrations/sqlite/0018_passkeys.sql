-- Passkeys (WebAuthn, src/two_factor/passkeys/): a user's credentials, as second factor and for
-- a login without the password. `passkey` is webauthn-rs's record of the credential as JSON:
-- the credential ID, the public key (COSE), the signature counter and the backup flags; no
-- secret (the private key never leaves the authenticator). `user_handle` is the random ID the
-- authenticator keeps for the user (a discoverable credential answers with it), one per user.
CREATE TABLE passkeys (
    id INTEGER PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_id TEXT NOT NULL UNIQUE,
    user_handle TEXT NOT NULL,
    name TEXT NOT NULL,
    passkey TEXT NOT NULL,
    backup_eligible BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE INDEX passkeys_user_idx ON passkeys (user_id);

-- Each login challenge is accepted once: the ceremony state lives in the session, which two
-- requests sent together both read; the first to insert the challenge here wins. Kept a day.
CREATE TABLE passkey_challenges_used (
    challenge TEXT PRIMARY KEY,
    used_at BIGINT NOT NULL
);
