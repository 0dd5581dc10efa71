-- Self-service password reset (src/accounts/forgot.rs) finds an account by its confirmed
-- address as well as by its username: this index makes that one lookup, not a table scan.
CREATE INDEX users_confirmed_email_idx ON users (LOWER(email)) WHERE email_confirmed;
