-- The audit trail (src/events.rs): one row per security event, with the user (when known),
-- the time and the client address. Phone numbers in `detail` are masked. Rows older than
-- EVENT_RETENTION are pruned. No foreign key: a trail outlives what it mentions.
CREATE TABLE security_events (
    id INTEGER PRIMARY KEY,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    user_id BIGINT,
    ip TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX security_events_at_idx ON security_events (at);
CREATE INDEX security_events_user_idx ON security_events (user_id, at);
