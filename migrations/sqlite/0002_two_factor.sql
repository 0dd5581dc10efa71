-- A user's proven phone number: written only after a successful check. One account per number.
CREATE TABLE phone_numbers (
    user_id BIGINT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    number TEXT NOT NULL,
    verified_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX phone_numbers_number_key ON phone_numbers (number);

-- Requests of the console provider (development): only a hash of the code is kept.
CREATE TABLE console_verify_requests (
    request_id TEXT PRIMARY KEY,
    number TEXT NOT NULL,
    code_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    wrong_codes BIGINT NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'pending'
);
CREATE INDEX console_verify_requests_number_idx ON console_verify_requests (number, state);

-- Events counted by the abuse limits (SMS sends, wrong codes), shared by every instance.
CREATE TABLE limit_events (
    scope TEXT NOT NULL,
    subject TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX limit_events_lookup_idx ON limit_events (scope, subject, at);
