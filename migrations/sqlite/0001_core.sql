-- Polls, users and votes. Times are Unix seconds (BIGINT) on both backends.
CREATE TABLE questions (
    id INTEGER PRIMARY KEY,
    question_text TEXT NOT NULL,
    pub_date BIGINT NOT NULL
);
CREATE INDEX questions_pub_date_idx ON questions (pub_date DESC, id DESC);

CREATE TABLE choices (
    id INTEGER PRIMARY KEY,
    question_id BIGINT NOT NULL REFERENCES questions (id) ON DELETE CASCADE,
    choice_text TEXT NOT NULL,
    -- votes imported from a Django fixture, counted on top of the vote rows
    base_votes BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX choices_question_idx ON choices (question_id);

CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL,
    password TEXT NOT NULL,
    email TEXT NOT NULL DEFAULT '',
    first_name TEXT NOT NULL DEFAULT '',
    last_name TEXT NOT NULL DEFAULT '',
    is_superuser BOOLEAN NOT NULL DEFAULT FALSE,
    is_staff BOOLEAN NOT NULL DEFAULT FALSE,
    is_active BOOLEAN NOT NULL DEFAULT TRUE,
    date_joined BIGINT NOT NULL,
    last_login BIGINT
);
CREATE UNIQUE INDEX users_username_lower_key ON users (lower(username));

-- One vote per user per poll; voting again replaces the choice.
CREATE TABLE votes (
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    question_id BIGINT NOT NULL REFERENCES questions (id) ON DELETE CASCADE,
    choice_id BIGINT NOT NULL REFERENCES choices (id) ON DELETE CASCADE,
    voted_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, question_id)
);
CREATE INDEX votes_choice_idx ON votes (choice_id);
