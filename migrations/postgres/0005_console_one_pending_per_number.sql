-- The console provider keeps Verify's rule "one running request per number" in the database
-- itself: a second request started at the same moment cannot slip in beside the first. Older
-- duplicates (possible before this index) keep only the newest running.
UPDATE console_verify_requests SET state = 'expired'
WHERE state = 'pending' AND EXISTS (
    SELECT 1 FROM console_verify_requests n
    WHERE n.number = console_verify_requests.number AND n.state = 'pending'
      AND (n.created_at > console_verify_requests.created_at
           OR (n.created_at = console_verify_requests.created_at
               AND n.request_id > console_verify_requests.request_id)));
CREATE UNIQUE INDEX console_verify_requests_running_key
    ON console_verify_requests (number) WHERE state = 'pending';
