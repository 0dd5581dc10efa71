-- Which account started each Verify request. A send to a number whose code is still running
-- joins that request only when this account started it: joining another account's request
-- would let its wrong codes end the owner's request (three wrong codes and it is over).
CREATE TABLE verify_requests (
    request_id TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    started_at BIGINT NOT NULL
);
CREATE INDEX verify_requests_started_idx ON verify_requests (started_at);
