-- Verify v2 and the SMS pumping guard.

-- The console provider follows the workflow ("Call me instead"): the channel a request is on.
ALTER TABLE console_verify_requests ADD COLUMN channel BIGINT NOT NULL DEFAULT 0;

-- The number each request went to: Verify v2 answers a second send to a number whose request
-- still runs with 409 and no request id, so the account's own running request is found here.
ALTER TABLE verify_requests ADD COLUMN number TEXT;
CREATE INDEX verify_requests_owner_idx ON verify_requests (user_id, number, started_at);

-- Every verification that went out, for the guard's conversion (sends against confirmations)
-- per destination country and prefix, and for `pollstr sms-report`. `outcome` is what a
-- signed Verify v2 callback reported (completed, failed, expired, rejected, user_rejected).
CREATE TABLE sms_sends (
    id BIGSERIAL PRIMARY KEY,
    request_id TEXT NOT NULL UNIQUE,
    country TEXT NOT NULL,
    prefix TEXT NOT NULL,
    sent_at BIGINT NOT NULL,
    channels BIGINT NOT NULL DEFAULT 1,
    confirmed_at BIGINT,
    outcome TEXT,
    outcome_at BIGINT
);
CREATE INDEX sms_sends_country_idx ON sms_sends (country, sent_at);
CREATE INDEX sms_sends_sent_idx ON sms_sends (sent_at);

-- Destination countries whose sends are paused: their conversion fell under the minimum.
CREATE TABLE sms_pauses (
    country TEXT PRIMARY KEY,
    paused_until BIGINT NOT NULL,
    reason TEXT NOT NULL
);
