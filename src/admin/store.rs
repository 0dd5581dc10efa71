//! The admin's SQL, the queries only the admin runs: staff status, the dashboard's counts, the poll
//! and user lists with search and filters, saving a poll with its choices in one transaction, and
//! the user actions that have no query of their own elsewhere. What the pages share with the rest
//! of Pollstr (ending sessions, the factor stores, events) is called where it lives.

use sqlx::FromRow;

use crate::db::{self, Db};
use crate::polls::store::choice_votes;
use crate::users::validation::username_key;
use crate::with_db;

/// `(is_staff, is_active)` of a user, read on every admin request.
pub async fn staff_status(db: &Db, user: i64) -> sqlx::Result<Option<(bool, bool)>> {
    with_db!(db, p => sqlx::query_as::<_, (bool, bool)>(
        "SELECT is_staff, is_active FROM users WHERE id = $1",
    )
    .bind(user)
    .fetch_optional(p)
    .await)
}

/// The dashboard's numbers.
#[derive(Debug, Default)]
pub struct Counts {
    pub polls: i64,
    pub scheduled: i64,
    pub votes: i64,
    pub users: i64,
    pub staff: i64,
    pub codes_today: i64,
}

pub async fn counts(db: &Db, midnight: i64) -> sqlx::Result<Counts> {
    let row: (i64, i64, i64, i64, i64, i64) = with_db!(db, p => sqlx::query_as(
        "SELECT \
           (SELECT COUNT(*) FROM questions), \
           (SELECT COUNT(*) FROM questions WHERE pub_date > $1), \
           CAST((SELECT COALESCE(SUM(base_votes), 0) FROM choices) \
              + (SELECT COALESCE(SUM(votes), 0) FROM choice_counts) AS BIGINT), \
           (SELECT COUNT(*) FROM users), \
           (SELECT COUNT(*) FROM users WHERE is_staff), \
           (SELECT COUNT(*) FROM security_events WHERE kind = 'code_sent' AND at >= $2)",
    )
    .bind(db::now())
    .bind(midnight)
    .fetch_one(p)
    .await)?;
    Ok(Counts {
        polls: row.0,
        scheduled: row.1,
        votes: row.2,
        users: row.3,
        staff: row.4,
        codes_today: row.5,
    })
}

/// `%text%` for `LIKE … ESCAPE '\'`, with the text's own `%`, `_` and `\` taken literally.
fn contains_pattern(text: &str) -> String {
    let mut p = String::from("%");
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// A row of the admin's poll list.
#[derive(Debug, FromRow)]
pub struct PollRow {
    pub id: i64,
    pub question_text: String,
    pub pub_date: i64,
    pub choices: i64,
    pub votes: i64,
    /// How many polls match the search and filter in all.
    pub total: i64,
}

/// Polls whose text contains `search` (case aside), published within `[from, to]` (either
/// bound optional), newest first.
pub async fn poll_list(
    db: &Db,
    search: &str,
    from: Option<i64>,
    to: Option<i64>,
    limit: i64,
    offset: i64,
) -> sqlx::Result<Vec<PollRow>> {
    with_db!(db, p => sqlx::query_as::<_, PollRow>(
        "SELECT q.id, q.question_text, q.pub_date, \
           (SELECT COUNT(*) FROM choices c WHERE c.question_id = q.id) AS choices, \
           CAST((SELECT COALESCE(SUM(c.base_votes), 0) FROM choices c WHERE c.question_id = q.id) \
              + (SELECT COALESCE(SUM(n.votes), 0) FROM choice_counts n JOIN choices c ON c.id = n.choice_id \
                 WHERE c.question_id = q.id) AS BIGINT) AS votes, \
           COUNT(*) OVER () AS total \
         FROM questions q \
         WHERE LOWER(q.question_text) LIKE $1 ESCAPE '\\' \
           AND ($2 IS NULL OR q.pub_date >= $2) AND ($3 IS NULL OR q.pub_date <= $3) \
         ORDER BY q.pub_date DESC, q.id DESC LIMIT $4 OFFSET $5",
    )
    .bind(contains_pattern(&search.to_lowercase()))
    .bind(from)
    .bind(to)
    .bind(limit)
    .bind(offset)
    .fetch_all(p)
    .await)
}

/// A poll as the admin edits it: published or not.
#[derive(Debug, FromRow)]
pub struct PollRecord {
    pub id: i64,
    pub question_text: String,
    pub pub_date: i64,
    pub closes_at: Option<i64>,
    pub closed_at: Option<i64>,
    pub results_visibility: String,
    pub max_choices: i64,
}

/// A choice with its votes (imported and cast), in the poll's order.
#[derive(Debug, FromRow)]
pub struct ChoiceRecord {
    pub id: i64,
    pub choice_text: String,
    pub votes: i64,
}

pub async fn poll(db: &Db, id: i64) -> sqlx::Result<Option<(PollRecord, Vec<ChoiceRecord>)>> {
    let question = with_db!(db, p => sqlx::query_as::<_, PollRecord>(
        "SELECT id, question_text, pub_date, closes_at, closed_at, results_visibility, max_choices \
         FROM questions WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(p)
    .await)?;
    let Some(question) = question else {
        return Ok(None);
    };
    let choices = with_db!(db, p => sqlx::query_as::<_, ChoiceRecord>(concat!(
        "SELECT c.id, c.choice_text, ",
        choice_votes!(),
        " AS votes FROM choices c WHERE c.question_id = $1 ORDER BY c.position, c.id",
    ))
    .bind(id)
    .fetch_all(p)
    .await)?;
    Ok(Some((question, choices)))
}

/// A choice as the admin saves it: an existing one (`id`) changed, moved or deleted, or a new
/// one. `position` is its place in the poll.
#[derive(Clone, Debug)]
pub struct ChoiceEdit {
    pub id: Option<i64>,
    pub text: String,
    pub position: i64,
    pub delete: bool,
}

/// A poll as the admin saves it (`id`: an existing poll; none: a new one).
#[derive(Clone, Debug)]
pub struct PollEdit {
    pub id: Option<i64>,
    pub question_text: String,
    pub pub_date: i64,
    /// When it stops taking votes; a poll whose close is recorded keeps its own (reopen first).
    pub closes_at: Option<i64>,
    /// `polls::closing::Visibility`'s key.
    pub results_visibility: String,
    /// How many choices a voter may pick (1 up to the number of choices).
    pub max_choices: i64,
    pub choices: Vec<ChoiceEdit>,
}

/// What saving (or deleting) did. Anything but `Saved` wrote nothing.
#[derive(Debug, PartialEq, Eq)]
pub enum Saved {
    /// The poll's id.
    Saved(i64),
    /// This form was saved already: where its first submission led.
    Duplicate(String),
    /// The poll, or one of the choices the form names, is no longer there (or not this poll's).
    Missing,
    /// The votes that would go are not the number the admin confirmed: ask again with this one.
    VotesToConfirm(i64),
    /// A voter chose more choices than the poll would now take: this many.
    SelectionsTooLarge(i64),
}

/// How long a form's token is remembered.
const SUBMISSION_MEMORY: i64 = 86_400;

/// Where an earlier submission of the form with this token led.
async fn submitted(db: &Db, token: &str) -> sqlx::Result<Saved> {
    let result = with_db!(db, p => sqlx::query_scalar::<_, String>(
        "SELECT result FROM admin_submissions WHERE token = $1",
    )
    .bind(token)
    .fetch_optional(p)
    .await)?;
    Ok(Saved::Duplicate(
        result.unwrap_or_else(|| "/admin/polls/".to_string()),
    ))
}

/// Saves a poll and its choices in one transaction, under the form's one-time `token` (a
/// second submission saves nothing: [`Saved::Duplicate`]). Choices marked for deletion go
/// with their votes only if those number `confirmed` (what the admin was shown), else nothing
/// is written and [`Saved::VotesToConfirm`] says how many there are now.
pub async fn save_poll(
    db: &Db,
    edit: &PollEdit,
    token: &str,
    staff: i64,
    confirmed: i64,
) -> sqlx::Result<Saved> {
    // An early return inside dropped the transaction: nothing was written.
    match save_poll_once(db, edit, token, staff, confirmed).await {
        Err(e) if db::is_unique_violation(&e) => submitted(db, token).await,
        other => other,
    }
}

async fn save_poll_once(
    db: &Db,
    edit: &PollEdit,
    token: &str,
    staff: i64,
    confirmed: i64,
) -> sqlx::Result<Saved> {
    let now = db::now();
    let deleted: Vec<i64> = edit
        .choices
        .iter()
        .filter(|c| c.delete)
        .filter_map(|c| c.id)
        .collect();
    let lock_choice = db.lock_row("choices");
    let hold = db.hold_table("votes");
    with_db!(db, p => {
        let mut tx = p.begin().await?;
        sqlx::query("DELETE FROM admin_submissions WHERE at < $1")
            .bind(now - SUBMISSION_MEMORY)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO admin_submissions (token, user_id, at, result) VALUES ($1, $2, $3, '')")
            .bind(token)
            .bind(staff)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        // The poll takes several answers: a selection may have rows past slot 0.
        let mut several = false;
        let id = match edit.id {
            Some(id) => {
                // Fewer choices per voter than some voter chose: refused. When the number goes
                // down, the votes are held still meanwhile, so no larger selection is written
                // until this commits (then the vote statement sees the new number).
                let current: Option<i64> = sqlx::query_scalar("SELECT max_choices FROM questions WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
                several = current.is_some_and(|c| c > 1);
                if current.is_some_and(|c| c > edit.max_choices) {
                    if let Some(hold) = &hold {
                        sqlx::query(hold).execute(&mut *tx).await?;
                    }
                    let largest: i64 = sqlx::query_scalar(
                        "SELECT CAST(COALESCE(MAX(slot), -1) + 1 AS BIGINT) FROM votes WHERE question_id = $1",
                    )
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
                    if largest > edit.max_choices {
                        return Ok(Saved::SelectionsTooLarge(largest));
                    }
                }
                let done = sqlx::query(
                    "UPDATE questions SET question_text = $1, pub_date = $2, results_visibility = $4, \
                       closes_at = CASE WHEN closed_at IS NULL THEN $5 ELSE closes_at END, \
                       max_choices = $6 WHERE id = $3",
                )
                    .bind(&edit.question_text)
                    .bind(edit.pub_date)
                    .bind(id)
                    .bind(&edit.results_visibility)
                    .bind(edit.closes_at)
                    .bind(edit.max_choices)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Ok(Saved::Missing);
                }
                id
            }
            None => sqlx::query_scalar::<_, i64>(
                "INSERT INTO questions (question_text, pub_date, closes_at, results_visibility, max_choices) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
            )
            .bind(&edit.question_text)
            .bind(edit.pub_date)
            .bind(edit.closes_at)
            .bind(&edit.results_visibility)
            .bind(edit.max_choices)
            .fetch_one(&mut *tx)
            .await?,
        };
        // Choices of a poll of several answers going: votes held still first (before the
        // choices' rows are locked, the order a vote takes them in), so that no voter's
        // selection changes while the moves below read and rewrite it.
        if several && !deleted.is_empty() {
            if let Some(hold) = &hold {
                sqlx::query(hold).execute(&mut *tx).await?;
            }
        }
        let mut going = 0;
        for &choice in &deleted {
            // A vote for the choice now waits for this transaction, so the count below is the
            // count deleted (on SQLite this transaction holds the write lock already).
            if let Some(lock) = &lock_choice {
                sqlx::query(lock)
                    .bind(choice)
                    .execute(&mut *tx)
                    .await?;
            }
            let votes: Option<i64> = sqlx::query_scalar(concat!(
                "SELECT ",
                choice_votes!(),
                " FROM choices c WHERE c.id = $1 AND c.question_id = $2",
            ))
            .bind(choice)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            match votes {
                Some(v) => going += v,
                None => return Ok(Saved::Missing),
            }
        }
        if going > 0 && going != confirmed {
            return Ok(Saved::VotesToConfirm(going));
        }
        for c in &edit.choices {
            match (c.id, c.delete) {
                (Some(choice), true) => {
                    if several {
                        // Each voter who chose it and a choice after it (a higher slot) keeps a
                        // selection without a hole: their last choice takes the deleted one's
                        // slot (a changed choice to the count triggers, which also keep the
                        // voter counted when that slot is 0) and its own row goes. Only these
                        // voters' rows are read (by choice, then by key). Votes are held still
                        // meanwhile (above), so no selection changes under the move.
                        let moved: Vec<(i64, i64, i64)> = sqlx::query_as(
                            "UPDATE votes SET choice_id = (SELECT m.choice_id FROM votes m \
                               WHERE m.user_id = votes.user_id AND m.question_id = votes.question_id \
                               ORDER BY m.slot DESC LIMIT 1) \
                             WHERE choice_id = $1 AND EXISTS (SELECT 1 FROM votes m \
                               WHERE m.user_id = votes.user_id AND m.question_id = votes.question_id \
                               AND m.slot > votes.slot) \
                             RETURNING user_id, slot, choice_id",
                        )
                        .bind(choice)
                        .fetch_all(&mut *tx)
                        .await?;
                        for (user, slot, moved_choice) in moved {
                            sqlx::query(
                                "DELETE FROM votes WHERE user_id = $1 AND question_id = $2 \
                                 AND slot > $3 AND choice_id = $4",
                            )
                            .bind(user)
                            .bind(id)
                            .bind(slot)
                            .bind(moved_choice)
                            .execute(&mut *tx)
                            .await?;
                        }
                    }
                    // Its votes and kept counts go by cascade (the count triggers see them go).
                    sqlx::query("DELETE FROM choices WHERE id = $1 AND question_id = $2")
                        .bind(choice)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                (Some(choice), false) => {
                    // Never moves a choice between polls: only this poll's choice is updated.
                    let done = sqlx::query(
                        "UPDATE choices SET choice_text = $1, position = $2 WHERE id = $3 AND question_id = $4",
                    )
                    .bind(&c.text)
                    .bind(c.position)
                    .bind(choice)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                    if done.rows_affected() == 0 {
                        return Ok(Saved::Missing);
                    }
                }
                (None, true) => {}
                (None, false) => {
                    sqlx::query("INSERT INTO choices (question_id, choice_text, position) VALUES ($1, $2, $3)")
                        .bind(id)
                        .bind(&c.text)
                        .bind(c.position)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        sqlx::query("UPDATE admin_submissions SET result = $1 WHERE token = $2")
            .bind(format!("/admin/polls/{id}/"))
            .bind(token)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Saved::Saved(id))
    })
}

/// The votes of a poll (imported and cast), or none if there is no such poll.
pub async fn poll_votes(db: &Db, id: i64) -> sqlx::Result<Option<i64>> {
    with_db!(db, p => sqlx::query_scalar::<_, i64>(concat!(
        "SELECT CAST(COALESCE((SELECT SUM(",
        choice_votes!(),
        ") FROM choices c WHERE c.question_id = q.id), 0) AS BIGINT) FROM questions q WHERE q.id = $1",
    ))
    .bind(id)
    .fetch_optional(p)
    .await)
}

/// Deletes a poll with its choices and votes, if its votes number `confirmed`.
pub async fn delete_poll(db: &Db, id: i64, confirmed: i64) -> sqlx::Result<Saved> {
    // Locked before it is counted: a vote cast meanwhile waits (SQLite: the write lock, taken
    // at BEGIN, so it never has to upgrade a read to a write; PostgreSQL: the row lock the
    // vote's foreign key needs), so the votes counted are the votes deleted.
    let lock = db.lock_row("questions");
    with_db!(db, p => {
        let mut tx = p.begin_with(db.begin_write()).await?;
        if let Some(lock) = &lock {
            sqlx::query(lock).bind(id).execute(&mut *tx).await?;
        }
        let votes: Option<i64> = sqlx::query_scalar(concat!(
            "SELECT CAST(COALESCE((SELECT SUM(",
            choice_votes!(),
            ") FROM choices c WHERE c.question_id = q.id), 0) AS BIGINT) FROM questions q WHERE q.id = $1",
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        match votes {
            None => return Ok(Saved::Missing),
            Some(v) if v != confirmed => return Ok(Saved::VotesToConfirm(v)),
            Some(_) => {}
        }
        sqlx::query("DELETE FROM questions WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Saved::Saved(id))
    })
}

/// A row of the admin's user list, or the user on their page.
#[derive(Debug, FromRow)]
pub struct UserRow {
    pub id: i64,
    pub username: String,
    pub is_staff: bool,
    pub is_active: bool,
    pub date_joined: i64,
    pub last_login: Option<i64>,
    pub total: i64,
}

/// Users whose name contains `search` (compared as usernames are), by id.
pub async fn user_list(
    db: &Db,
    search: &str,
    limit: i64,
    offset: i64,
) -> sqlx::Result<Vec<UserRow>> {
    with_db!(db, p => sqlx::query_as::<_, UserRow>(
        "SELECT id, username, is_staff, is_active, date_joined, last_login, COUNT(*) OVER () AS total \
         FROM users WHERE username_key LIKE $1 ESCAPE '\\' ORDER BY id LIMIT $2 OFFSET $3",
    )
    .bind(contains_pattern(&username_key(search)))
    .bind(limit)
    .bind(offset)
    .fetch_all(p)
    .await)
}

pub async fn user(db: &Db, id: i64) -> sqlx::Result<Option<UserRow>> {
    with_db!(db, p => sqlx::query_as::<_, UserRow>(
        "SELECT id, username, is_staff, is_active, date_joined, last_login, CAST(1 AS BIGINT) AS total FROM users WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(p)
    .await)
}

pub async fn set_active(db: &Db, id: i64, active: bool) -> sqlx::Result<()> {
    with_db!(db, p => sqlx::query("UPDATE users SET is_active = $1 WHERE id = $2")
        .bind(active)
        .bind(id)
        .execute(p)
        .await
        .map(|_| ()))
}

pub async fn set_staff(db: &Db, id: i64, staff: bool) -> sqlx::Result<()> {
    with_db!(db, p => sqlx::query("UPDATE users SET is_staff = $1 WHERE id = $2")
        .bind(staff)
        .bind(id)
        .execute(p)
        .await
        .map(|_| ()))
}

/// Forgets the user's proven number (a reset of their second factor: they prove one again).
pub async fn remove_phone(db: &Db, id: i64) -> sqlx::Result<bool> {
    with_db!(db, p => sqlx::query("DELETE FROM phone_numbers WHERE user_id = $1")
        .bind(id)
        .execute(p)
        .await
        .map(|r| r.rows_affected() > 0))
}
