//! The polls' SQL: questions, choices, votes and the counts kept of them. The poll pages,
//! the vote writer (`vote_queue`) and `pollstr recount` (`counts`) call these; the admin and
//! the fixtures use [`choice_votes`]. Every statement is one text for both backends, except
//! the batch vote ([`cast_votes`]): its rows bind as arrays on PostgreSQL and as one
//! placeholder per value on SQLite, so it is two statements, chosen by backend here.

use sqlx::FromRow;

use super::receipt::{self, Receipt};
use crate::db::{self, Db};
use crate::with_db;

/// A choice's vote count, as SQL over `choices c`: the votes imported without rows plus the
/// count the vote triggers keep in `choice_counts` (migrations/*/0003_vote_counts.sql). A few
/// index rows, however many votes the choice has.
macro_rules! choice_votes {
    () => {
        "c.base_votes + CAST(COALESCE((SELECT SUM(n.votes) FROM choice_counts n \
         WHERE n.choice_id = c.id), 0) AS BIGINT)"
    };
}
pub(crate) use choice_votes;

#[derive(Clone, Debug, FromRow)]
pub struct Question {
    pub id: i64,
    pub question_text: String,
    pub pub_date: i64,
    /// When it stops taking votes (`polls::closing`); none: it stays open.
    pub closes_at: Option<i64>,
    /// When its close was recorded, with the votes held still: the counts are final.
    pub closed_at: Option<i64>,
    /// Who sees the results before it closes: `always`, `voted` or `closed`.
    pub results_visibility: String,
    /// How many choices a voter may pick (1: one, radio buttons).
    pub max_choices: i64,
}

/// A row of a page of the poll list: a question, one of its choices (none if it has none), and
/// how many questions are published in all.
#[derive(Clone, Debug, FromRow)]
pub struct CardRow {
    pub id: i64,
    pub question_text: String,
    pub pub_date: i64,
    pub closes_at: Option<i64>,
    pub closed_at: Option<i64>,
    pub total: i64,
    pub choice_text: Option<String>,
}

#[derive(Clone, Debug, FromRow)]
pub struct ChoiceResult {
    pub id: i64,
    pub choice_text: String,
    pub votes: i64,
}

/// Whether a question `q` is closed at `$1` (now), as SQL: its close was recorded, or its
/// closing time has passed.
macro_rules! closed_sql {
    () => {
        "(q.closed_at IS NOT NULL OR (q.closes_at IS NOT NULL AND q.closes_at <= $1))"
    };
}

/// One page of published questions (open ones first, then latest first) with their choices
/// (in their order: position, then id), and the number of published questions, in one query: on SQLite each query is a
/// round trip to a connection's worker thread, the main cost of a page.
pub async fn published_page(db: &Db, limit: i64, offset: i64) -> sqlx::Result<Vec<CardRow>> {
    with_db!(db, p => sqlx::query_as::<_, CardRow>(concat!(
        "SELECT q.id, q.question_text, q.pub_date, q.closes_at, q.closed_at, q.total, c.choice_text FROM \
           (SELECT q.id, q.question_text, q.pub_date, q.closes_at, q.closed_at, ",
        closed_sql!(),
        " AS closed, COUNT(*) OVER () AS total FROM questions q \
            WHERE q.pub_date <= $1 ORDER BY closed, q.pub_date DESC, q.id DESC LIMIT $2 OFFSET $3) q \
         LEFT JOIN choices c ON c.question_id = q.id \
         ORDER BY q.closed, q.pub_date DESC, q.id DESC, c.position, c.id",
    ))
    .bind(db::now())
    .bind(limit)
    .bind(offset)
    .fetch_all(p)
    .await)
}

pub async fn count_published(db: &Db) -> sqlx::Result<i64> {
    with_db!(db, p => sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM questions WHERE pub_date <= $1")
        .bind(db::now())
        .fetch_one(p)
        .await)
}

/// A poll as a voter sees it: the question, each choice with its count (imported votes plus
/// one per user who chose it), and the choice this user voted for.
#[derive(Clone, Debug)]
pub struct PollView {
    pub question: Question,
    pub choices: Vec<ChoiceResult>,
    pub mine: Option<i64>,
}

#[derive(FromRow)]
struct PollRow {
    question_id: i64,
    question_text: String,
    pub_date: i64,
    closes_at: Option<i64>,
    closed_at: Option<i64>,
    results_visibility: String,
    max_choices: i64,
    id: Option<i64>,
    choice_text: Option<String>,
    votes: Option<i64>,
    mine: Option<i64>,
}

/// A published poll with its counts and `user_id`'s vote, in one query (a poll page is on the
/// hot path: each query is a round trip).
pub async fn poll_view(db: &Db, question_id: i64, user_id: i64) -> sqlx::Result<Option<PollView>> {
    let rows = with_db!(db, p => sqlx::query_as::<_, PollRow>(concat!(
        "SELECT q.id AS question_id, q.question_text, q.pub_date, q.closes_at, q.closed_at, \
         q.results_visibility, q.max_choices, c.id, c.choice_text, ",
        choice_votes!(),
        " AS votes, (SELECT v.choice_id FROM votes v WHERE v.user_id = $2 AND v.question_id = q.id AND v.slot = 0) AS mine \
         FROM questions q LEFT JOIN choices c ON c.question_id = q.id \
         WHERE q.id = $1 AND q.pub_date <= $3 ORDER BY c.position, c.id",
    ))
    .bind(question_id)
    .bind(user_id)
    .bind(db::now())
    .fetch_all(p)
    .await)?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let question = Question {
        id: first.question_id,
        question_text: first.question_text.clone(),
        pub_date: first.pub_date,
        closes_at: first.closes_at,
        closed_at: first.closed_at,
        results_visibility: first.results_visibility.clone(),
        max_choices: first.max_choices,
    };
    let mine = first.mine;
    let choices = rows
        .into_iter()
        .filter_map(|r| {
            Some(ChoiceResult {
                id: r.id?,
                choice_text: r.choice_text?,
                votes: r.votes.unwrap_or(0),
            })
        })
        .collect();
    Ok(Some(PollView {
        question,
        choices,
        mine,
    }))
}

/// What [`poll_view_with_session`] read: the session row (`None`: no such session, or
/// expired), the user the row names, the poll as that user sees it (`None`: not published),
/// and the snapshot it was read under (`pg_current_snapshot()`, as text).
pub struct SessionAndPoll {
    pub session: Option<Vec<u8>>,
    pub user_id: Option<i64>,
    pub view: Option<PollView>,
    pub snapshot: String,
}

#[derive(FromRow)]
struct SessionPollRow {
    session: Option<Vec<u8>>,
    session_user: Option<i64>,
    question_id: Option<i64>,
    question_text: Option<String>,
    pub_date: Option<i64>,
    closes_at: Option<i64>,
    closed_at: Option<i64>,
    results_visibility: Option<String>,
    max_choices: Option<i64>,
    ids: Option<Vec<i64>>,
    texts: Option<Vec<String>>,
    votes: Option<Vec<i64>>,
    mine: Option<i64>,
    snapshot: String,
}

/// PostgreSQL only: a session row and, in the same statement, [`poll_view`] for the user that
/// row names: one round trip for a verified poll page (`polls::prefetch`). One row, with the
/// choices as arrays in their order.
pub async fn poll_view_with_session(
    conn: &mut sqlx::PgConnection,
    session_id: &str,
    question_id: i64,
) -> sqlx::Result<SessionAndPoll> {
    let row = sqlx::query_as::<_, SessionPollRow>(concat!(
        r#"SELECT s.data AS session, s.user_id AS session_user,
                  q.id AS question_id, q.question_text, q.pub_date, q.closes_at, q.closed_at,
                  q.results_visibility, q.max_choices, c.ids, c.texts, c.votes,
                  (SELECT v.choice_id FROM votes v
                   WHERE v.user_id = s.user_id AND v.question_id = q.id AND v.slot = 0) AS mine,
                  CAST(pg_current_snapshot() AS TEXT) AS snapshot
           FROM (SELECT 1) AS one
           LEFT JOIN "tower_sessions"."session" s ON s.id = $1 AND s.expiry_date > $2
           LEFT JOIN questions q ON q.id = $3 AND q.pub_date <= $4
           LEFT JOIN LATERAL (
               SELECT array_agg(c.id ORDER BY c.position, c.id) AS ids,
                      array_agg(c.choice_text ORDER BY c.position, c.id) AS texts,
                      array_agg("#,
        choice_votes!(),
        r#" ORDER BY c.position, c.id) AS votes
               FROM choices c WHERE c.question_id = q.id) c ON true"#,
    ))
    .bind(session_id)
    .bind(time::OffsetDateTime::now_utc())
    .bind(question_id)
    .bind(db::now())
    .fetch_one(conn)
    .await?;
    let view = match (
        row.question_id,
        row.question_text,
        row.pub_date,
        row.results_visibility,
    ) {
        (Some(id), Some(question_text), Some(pub_date), Some(results_visibility)) => {
            let choices = row
                .ids
                .unwrap_or_default()
                .into_iter()
                .zip(row.texts.unwrap_or_default())
                .zip(row.votes.unwrap_or_default())
                .map(|((id, choice_text), votes)| ChoiceResult {
                    id,
                    choice_text,
                    votes,
                })
                .collect();
            Some(PollView {
                question: Question {
                    id,
                    question_text,
                    pub_date,
                    closes_at: row.closes_at,
                    closed_at: row.closed_at,
                    results_visibility,
                    max_choices: row.max_choices.unwrap_or(1),
                },
                choices,
                mine: row.mine,
            })
        }
        _ => None,
    };
    Ok(SessionAndPoll {
        session: row.session,
        user_id: row.session_user,
        view,
        snapshot: row.snapshot,
    })
}

/// A poll page's read when its poll is kept in memory (`polls::read_batch`): the session, the
/// question, and the snapshot the kept poll was read under.
#[derive(Clone, Debug)]
pub struct VoteAsk {
    pub session_id: String,
    pub question_id: i64,
    pub snapshot: String,
}

/// What [`sessions_and_votes`] read for one [`VoteAsk`]: the session row and its user, as
/// [`SessionAndPoll`], that user's vote on the question, and whether the snapshot saw that
/// vote as it is now (true when there is no vote).
#[derive(Debug, FromRow)]
pub struct SessionAndVote {
    pub session: Option<Vec<u8>>,
    pub user_id: Option<i64>,
    pub mine: Option<i64>,
    pub seen: bool,
}

#[derive(FromRow)]
struct SessionAndVoteRow {
    n: i64,
    #[sqlx(flatten)]
    read: SessionAndVote,
}

/// PostgreSQL only: for each ask, in order, the session row, its user's vote on the question,
/// and whether that vote row as it is now was written by a transaction the ask's snapshot sees
/// (the column `xact`, migrations/postgres/0016): then counts read under that snapshot include
/// this vote. One statement for them all: a primary-key lookup of each session and each vote
/// (`LIMIT 1` keeps the planner from joining the whole tables, as a merge join over the votes'
/// index or a hash of every session would).
pub async fn sessions_and_votes(
    conn: &mut sqlx::PgConnection,
    asks: &[&VoteAsk],
) -> sqlx::Result<Vec<SessionAndVote>> {
    let sessions: Vec<&str> = asks.iter().map(|a| a.session_id.as_str()).collect();
    let questions: Vec<i64> = asks.iter().map(|a| a.question_id).collect();
    let snapshots: Vec<&str> = asks.iter().map(|a| a.snapshot.as_str()).collect();
    let rows = sqlx::query_as::<_, SessionAndVoteRow>(
        r#"SELECT r.n, s.data AS session, s.user_id, v.choice_id AS mine,
                  COALESCE(pg_visible_in_snapshot(v.xact, CAST(r.snap AS pg_snapshot)), TRUE) AS seen
           FROM unnest(CAST($1 AS TEXT[]), CAST($2 AS BIGINT[]), CAST($3 AS TEXT[]))
                WITH ORDINALITY AS r(sid, qid, snap, n)
           LEFT JOIN LATERAL (SELECT data, user_id FROM "tower_sessions"."session"
                              WHERE id = r.sid AND expiry_date > $4 LIMIT 1) s ON TRUE
           LEFT JOIN LATERAL (SELECT choice_id, xact FROM votes
                              WHERE user_id = s.user_id AND question_id = r.qid AND slot = 0 LIMIT 1) v ON TRUE
           ORDER BY r.n"#,
    )
    .bind(&sessions)
    .bind(&questions)
    .bind(&snapshots)
    .bind(time::OffsetDateTime::now_utc())
    .fetch_all(conn)
    .await?;
    // One row per ask, in order (each ask joins at most one session and one vote).
    if rows.len() != asks.len() || rows.iter().zip(1..).any(|(r, n)| r.n != n) {
        return Err(sqlx::Error::Protocol("one row per read expected".into()));
    }
    Ok(rows.into_iter().map(|r| r.read).collect())
}

/// The choice `user_id` voted for on the question, if any (the first of a selection of several:
/// its row at slot 0, which every vote has).
pub async fn user_vote(db: &Db, user_id: i64, question_id: i64) -> sqlx::Result<Option<i64>> {
    with_db!(db, p => sqlx::query_scalar::<_, i64>(
        "SELECT choice_id FROM votes WHERE user_id = $1 AND question_id = $2 AND slot = 0",
    )
    .bind(user_id)
    .bind(question_id)
    .fetch_optional(p)
    .await)
}

/// The vote upsert: `$1` user, `$2` now, `$3` choice, `$4` question, `$5` receipt hash. It writes a row only when
/// the choice is one of this question's and the question is published and open: its close not
/// recorded ([`close`] holds the votes while it records it) and its closing time not passed;
/// and only on a one-answer poll (`max_choices = 1`), whose votes are each one row, at slot 0
/// (a poll of several answers takes [`cast_selections`], which also removes a voter's rows
/// past their new selection).
const CAST_VOTE: &str = "INSERT INTO votes (user_id, question_id, slot, choice_id, voted_at, receipt_hash) \
     SELECT $1, c.question_id, 0, c.id, $2, $5 FROM choices c JOIN questions q ON q.id = c.question_id \
     WHERE c.id = $3 AND c.question_id = $4 AND q.pub_date <= $2 AND q.max_choices = 1 \
       AND q.closed_at IS NULL AND (q.closes_at IS NULL OR q.closes_at > $2) \
     ON CONFLICT (user_id, question_id, slot) DO UPDATE SET choice_id = excluded.choice_id, \
       voted_at = excluded.voted_at, receipt_hash = excluded.receipt_hash";

/// Records the user's vote, replacing an earlier one on the same question, in one statement
/// (so concurrent votes cannot lose or double a count). False, and nothing written, when the
/// choice is not one of this question's or the question is not published.
/// (With a new receipt that nobody sees: [`cast_vote_with`] takes the voter's.)
pub async fn cast_vote(
    db: &Db,
    user_id: i64,
    question_id: i64,
    choice_id: i64,
) -> sqlx::Result<bool> {
    cast_vote_with(db, user_id, question_id, choice_id, &Receipt::new().hash).await
}

/// [`cast_vote`], storing this receipt's hash with the vote (replacing the earlier one's).
pub async fn cast_vote_with(
    db: &Db,
    user_id: i64,
    question_id: i64,
    choice_id: i64,
    receipt_hash: &str,
) -> sqlx::Result<bool> {
    let done = with_db!(db, p => sqlx::query(CAST_VOTE)
        .bind(user_id)
        .bind(db::now())
        .bind(choice_id)
        .bind(question_id)
        .bind(receipt_hash)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(done > 0)
}

/// Several users' votes in one statement (the vote queue's batch). `ballots` are (user id,
/// question id, choice id), at most one per (user, question): one statement cannot apply two
/// votes of the same user in a promised order (PostgreSQL refuses it). Each answer is
/// [`cast_vote`]'s for that ballot; `receipts[i]` is the receipt hash of `ballots[i]`.
pub async fn cast_votes(
    db: &Db,
    ballots: &[(i64, i64, i64)],
    receipts: &[&str],
) -> sqlx::Result<Vec<bool>> {
    if receipts.len() != ballots.len() {
        return Err(sqlx::Error::Protocol(
            "one receipt per ballot expected".into(),
        ));
    }
    if ballots.is_empty() {
        return Ok(Vec::new());
    }
    let written: Vec<(i64, i64, i64)> = match db {
        Db::Sqlite(pool) => {
            let mut sql = String::from(
                "INSERT INTO votes (user_id, question_id, slot, choice_id, voted_at, receipt_hash) \
                 SELECT b.column1, c.question_id, 0, c.id, ?1, b.column4 FROM (VALUES ",
            );
            for i in 0..ballots.len() {
                let n = 2 + 4 * i;
                if i > 0 {
                    sql.push(',');
                }
                sql.push_str(&format!("(?{}, ?{}, ?{}, ?{})", n, n + 1, n + 2, n + 3));
            }
            sql.push_str(
                ") AS b JOIN choices c ON c.id = b.column3 AND c.question_id = b.column2 \
                 JOIN questions q ON q.id = c.question_id WHERE q.pub_date <= ?1 AND q.max_choices = 1 \
                 AND q.closed_at IS NULL AND (q.closes_at IS NULL OR q.closes_at > ?1) \
                 ON CONFLICT (user_id, question_id, slot) DO UPDATE SET choice_id = excluded.choice_id, \
                   voted_at = excluded.voted_at, receipt_hash = excluded.receipt_hash \
                 RETURNING user_id, question_id, choice_id",
            );
            // Batch sizes vary: not kept in the connection's statement cache.
            let mut query = sqlx::query_as::<_, (i64, i64, i64)>(&sql)
                .persistent(false)
                .bind(db::now());
            for (&(user_id, question_id, choice_id), &hash) in ballots.iter().zip(receipts) {
                query = query
                    .bind(user_id)
                    .bind(question_id)
                    .bind(choice_id)
                    .bind(hash);
            }
            query.fetch_all(pool).await?
        }
        // Arrays: one statement text whatever the batch's size. Rows go in in (user, question)
        // order, the order in which any two batches then lock the vote rows they update.
        Db::Postgres(pool) => {
            let users: Vec<i64> = ballots.iter().map(|b| b.0).collect();
            let questions: Vec<i64> = ballots.iter().map(|b| b.1).collect();
            let choices: Vec<i64> = ballots.iter().map(|b| b.2).collect();
            sqlx::query_as::<_, (i64, i64, i64)>(
                "INSERT INTO votes (user_id, question_id, slot, choice_id, voted_at, receipt_hash) \
                 SELECT b.user_id, c.question_id, 0, c.id, $4, b.receipt_hash \
                 FROM unnest(CAST($1 AS BIGINT[]), CAST($2 AS BIGINT[]), CAST($3 AS BIGINT[]), \
                             CAST($5 AS TEXT[])) \
                      AS b(user_id, question_id, choice_id, receipt_hash) \
                 JOIN choices c ON c.id = b.choice_id AND c.question_id = b.question_id \
                 JOIN questions q ON q.id = c.question_id WHERE q.pub_date <= $4 AND q.max_choices = 1 \
                 AND q.closed_at IS NULL AND (q.closes_at IS NULL OR q.closes_at > $4) \
                 ORDER BY b.user_id, b.question_id \
                 ON CONFLICT (user_id, question_id, slot) DO UPDATE SET choice_id = excluded.choice_id, \
                   voted_at = excluded.voted_at, receipt_hash = excluded.receipt_hash \
                 RETURNING user_id, question_id, choice_id",
            )
            .bind(&users)
            .bind(&questions)
            .bind(&choices)
            .bind(db::now())
            .bind(receipts)
            .fetch_all(pool)
            .await?
        }
    };
    let written: std::collections::HashSet<(i64, i64, i64)> = written.into_iter().collect();
    Ok(ballots.iter().map(|b| written.contains(b)).collect())
}

/// Several votes in one transaction, one statement each, in order: a batch in which a user
/// voted twice on one poll (one statement cannot apply them in a promised order). Each answer
/// is [`cast_vote`]'s; `receipts` as [`cast_votes`]'.
pub async fn cast_votes_in_order(
    db: &Db,
    ballots: &[(i64, i64, i64)],
    receipts: &[&str],
) -> sqlx::Result<Vec<bool>> {
    let mut counted = Vec::with_capacity(ballots.len());
    with_db!(db, pool => {
        let mut tx = pool.begin_with(db.begin_write()).await?;
        for (&(user_id, question_id, choice_id), &hash) in ballots.iter().zip(receipts) {
            let done = sqlx::query(CAST_VOTE)
                .bind(user_id)
                .bind(db::now())
                .bind(choice_id)
                .bind(question_id)
                .bind(hash)
                .execute(&mut *tx)
                .await?;
            counted.push(done.rows_affected() > 0);
        }
        tx.commit().await?;
    });
    Ok(counted)
}

/// Rows per statement of [`cast_selections`] (6 parameters each, and `$1`; SQLite allows 32,766).
const SELECTION_ROWS: usize = 4_000;

/// The rows of a selection batch: `$1` now, then per row (user, question, slot, choice, size
/// of its selection, receipt hash). A row is written only for a choice of its question, on a
/// published open poll that takes that many choices. Returns (user, question) per row written.
fn selection_insert(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO votes (user_id, question_id, slot, choice_id, voted_at, receipt_hash) \
         SELECT b.column1, c.question_id, b.column3, c.id, $1, b.column6 FROM (VALUES ",
    );
    for i in 0..rows {
        let n = 2 + 6 * i;
        if i > 0 {
            sql.push(',');
        }
        sql.push_str(&format!(
            "(${}, ${}, ${}, ${}, ${}, ${})",
            n,
            n + 1,
            n + 2,
            n + 3,
            n + 4,
            n + 5
        ));
    }
    sql.push_str(
        ") AS b JOIN choices c ON c.id = b.column4 AND c.question_id = b.column2 \
         JOIN questions q ON q.id = c.question_id WHERE q.pub_date <= $1 AND q.max_choices >= b.column5 \
         AND q.closed_at IS NULL AND (q.closes_at IS NULL OR q.closes_at > $1) \
         ORDER BY b.column1, b.column2, b.column3 \
         ON CONFLICT (user_id, question_id, slot) DO UPDATE SET choice_id = excluded.choice_id, \
           voted_at = excluded.voted_at, receipt_hash = excluded.receipt_hash \
         RETURNING user_id, question_id",
    );
    sql
}

/// Removes each written selection's rows past its size: (user, question, size) per selection.
/// One primary-key range per selection, OR'ed: both backends scan those ranges only (a join
/// with a `VALUES` list made PostgreSQL hash it and read the whole table: 441 ms at a million
/// votes, against 0.3 ms).
fn selection_trim(selections: usize) -> String {
    let mut sql = String::from("DELETE FROM votes WHERE ");
    for i in 0..selections {
        let n = 1 + 3 * i;
        if i > 0 {
            sql.push_str(" OR ");
        }
        sql.push_str(&format!(
            "(user_id = ${} AND question_id = ${} AND slot >= ${})",
            n,
            n + 1,
            n + 2
        ));
    }
    sql
}

/// A voter's selection on a poll of several answers: user id, question id, the choices (at
/// least one, no two the same), and the receipt hash stored with each of its rows.
#[derive(Clone, Copy, Debug)]
pub struct Selection<'a> {
    pub user_id: i64,
    pub question_id: i64,
    pub choices: &'a [i64],
    pub receipt_hash: &'a str,
}

/// Several voters' selections, each replacing the voter's earlier vote on the poll, in one
/// transaction: one statement writes every row (slot `i` of a selection holds its `i`th
/// choice; an existing row at that slot is updated, so the count triggers see one change), a
/// second removes each voter's rows past their new selection. At most one selection per (user,
/// question). Each answer is whether that selection was counted: all its choices are the
/// poll's, the poll is published and open and takes that many choices. A selection that could
/// be written only in part (a choice deleted meanwhile) writes nothing: the batch is then
/// written one selection at a time, and that one is refused.
pub async fn cast_selections(db: &Db, selections: &[Selection<'_>]) -> sqlx::Result<Vec<bool>> {
    if let Some(counted) = try_selections(db, selections).await? {
        return Ok(counted);
    }
    let mut counted = Vec::with_capacity(selections.len());
    for s in selections {
        let one = try_selections(db, std::slice::from_ref(s)).await?;
        counted.push(one.is_some_and(|c| c[0]));
    }
    Ok(counted)
}

/// [`cast_selections`] in one transaction; `None` (and nothing written) if a selection would be
/// written in part.
async fn try_selections(db: &Db, selections: &[Selection<'_>]) -> sqlx::Result<Option<Vec<bool>>> {
    if selections.is_empty() {
        return Ok(Some(Vec::new()));
    }
    let rows: Vec<(i64, i64, i64, i64, i64, &str)> = selections
        .iter()
        .flat_map(|s| {
            let size = s.choices.len() as i64;
            s.choices
                .iter()
                .enumerate()
                .map(move |(i, &c)| (s.user_id, s.question_id, i as i64, c, size, s.receipt_hash))
        })
        .collect();
    let now = db::now();
    let counted = with_db!(db, pool => {
        let mut tx = pool.begin_with(db.begin_write()).await?;
        let mut written: std::collections::HashMap<(i64, i64), usize> = Default::default();
        for chunk in rows.chunks(SELECTION_ROWS) {
            let sql = selection_insert(chunk.len());
            // Batch sizes vary: not kept in the connection's statement cache.
            let mut query = sqlx::query_as::<_, (i64, i64)>(&sql).persistent(false).bind(now);
            for &(user, question, slot, choice, size, hash) in chunk {
                query = query.bind(user).bind(question).bind(slot).bind(choice).bind(size).bind(hash);
            }
            for key in query.fetch_all(&mut *tx).await? {
                *written.entry(key).or_default() += 1;
            }
        }
        let mut counted = Vec::with_capacity(selections.len());
        for s in selections {
            let n = written.get(&(s.user_id, s.question_id)).copied().unwrap_or(0);
            if n != 0 && n != s.choices.len() {
                // Dropped: nothing of this transaction is written.
                return Ok(None);
            }
            counted.push(n != 0);
        }
        let trimmed: Vec<&Selection> = selections
            .iter()
            .zip(&counted)
            .filter_map(|(s, &c)| c.then_some(s))
            .collect();
        for chunk in trimmed.chunks(SELECTION_ROWS) {
            let sql = selection_trim(chunk.len());
            let mut query = sqlx::query(&sql).persistent(false);
            for s in chunk {
                query = query.bind(s.user_id).bind(s.question_id).bind(s.choices.len() as i64);
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        counted
    });
    Ok(Some(counted))
}

/// The choices `user_id` chose on the question, in their slots' order (none: no vote).
pub async fn user_selection(db: &Db, user_id: i64, question_id: i64) -> sqlx::Result<Vec<i64>> {
    with_db!(db, p => sqlx::query_scalar::<_, i64>(
        "SELECT choice_id FROM votes WHERE user_id = $1 AND question_id = $2 ORDER BY slot",
    )
    .bind(user_id)
    .bind(question_id)
    .fetch_all(p)
    .await)
}

/// A poll's number of voters: its imported votes (one voter each: Django's polls took one
/// answer) and the voters the count triggers keep (`choice_counts.voters`: a few index rows).
pub async fn poll_voters(db: &Db, question_id: i64) -> sqlx::Result<i64> {
    with_db!(db, p => sqlx::query_scalar::<_, i64>(
        "SELECT CAST(COALESCE((SELECT SUM(c.base_votes) FROM choices c WHERE c.question_id = $1), 0) \
           + COALESCE((SELECT SUM(n.voters) FROM choice_counts n JOIN choices c ON c.id = n.choice_id \
                       WHERE c.question_id = $1), 0) AS BIGINT)",
    )
    .bind(question_id)
    .fetch_one(p)
    .await)
}

/// The choices whose kept count is not their number of vote rows, or whose kept voters are not
/// their number of rows at slot 0.
const DIFFERENCES: &str = "SELECT c.id, c.question_id, \
       CAST(COALESCE(k.n, 0) AS BIGINT) AS kept, CAST(COALESCE(v.n, 0) AS BIGINT) AS counted \
     FROM choices c \
     LEFT JOIN (SELECT choice_id, SUM(votes) AS n, SUM(voters) AS f FROM choice_counts GROUP BY choice_id) k \
       ON k.choice_id = c.id \
     LEFT JOIN (SELECT choice_id, COUNT(*) AS n, SUM(CASE WHEN slot = 0 THEN 1 ELSE 0 END) AS f \
                FROM votes GROUP BY choice_id) v ON v.choice_id = c.id \
     WHERE COALESCE(k.n, 0) <> COALESCE(v.n, 0) OR COALESCE(k.f, 0) <> COALESCE(v.f, 0) ORDER BY c.id";

/// `counts::recount`'s transaction: with votes held still (SQLite: the write lock; PostgreSQL:
/// a SHARE lock on `votes`, which waits for votes being written and makes new ones wait until
/// this commits), the choices whose kept count differs from their vote rows, as (choice,
/// question, kept, counted); if there are any, every count is written again from the rows.
pub async fn recount(db: &Db) -> sqlx::Result<Vec<(i64, i64, i64, i64)>> {
    let hold = db.hold_table("votes");
    let shard = db.vote_shard();
    let rows = with_db!(db, pool => {
        let mut tx = pool.begin_with(db.begin_write()).await?;
        if let Some(hold) = &hold {
            sqlx::query(hold).execute(&mut *tx).await?;
        }
        let rows = sqlx::query_as(DIFFERENCES).fetch_all(&mut *tx).await?;
        if !rows.is_empty() {
            sqlx::query("DELETE FROM choice_counts").execute(&mut *tx).await?;
            sqlx::query(&format!(
                "INSERT INTO choice_counts (choice_id, shard, votes, voters) \
                 SELECT choice_id, {shard} AS s, COUNT(*), SUM(CASE WHEN slot = 0 THEN 1 ELSE 0 END) \
                 FROM votes GROUP BY choice_id, s"
            ))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        rows
    });
    Ok(rows)
}

/// Records a poll's close with votes held still (SQLite: the write lock; PostgreSQL: a SHARE
/// lock on `votes`, which waits for the votes being written and makes new ones wait until this
/// commits, when they see the close and are refused). `now`: staff's *Close now* (the closing
/// time becomes now if it was later or unset); otherwise only a poll whose closing time has
/// passed is recorded. True if this call recorded it; the counts read after it are final.
/// The same transaction seals the poll (`poll_seals`): the audit file of its counted votes
/// ([`receipt::audit_file`]) and that file's digest.
pub async fn record_close(db: &Db, question_id: i64, now: bool) -> sqlx::Result<bool> {
    let hold = db.hold_table("votes");
    let sql = if now {
        "UPDATE questions SET closed_at = $2, \
           closes_at = CASE WHEN closes_at IS NULL OR closes_at > $2 THEN $2 ELSE closes_at END \
         WHERE id = $1 AND closed_at IS NULL"
    } else {
        "UPDATE questions SET closed_at = $2 \
         WHERE id = $1 AND closed_at IS NULL AND closes_at IS NOT NULL AND closes_at <= $2"
    };
    let done = with_db!(db, pool => {
        let mut tx = pool.begin_with(db.begin_write()).await?;
        if let Some(hold) = &hold {
            sqlx::query(hold).execute(&mut *tx).await?;
        }
        let done = sqlx::query(sql)
            .bind(question_id)
            .bind(db::now())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if done > 0 {
            let rows: Vec<(Option<String>, String)> = sqlx::query_as(AUDIT_ROWS)
                .bind(question_id)
                .fetch_all(&mut *tx)
                .await?;
            let body = receipt::audit_file(&rows);
            let voters: i64 = sqlx::query_scalar(VOTERS)
                .bind(question_id)
                .fetch_one(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO poll_seals (question_id, sealed_at, votes, digest, voters) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (question_id) DO UPDATE SET \
                 sealed_at = excluded.sealed_at, votes = excluded.votes, \
                 digest = excluded.digest, voters = excluded.voters",
            )
            .bind(question_id)
            .bind(db::now())
            .bind(rows.len() as i64)
            .bind(receipt::digest(&body))
            .bind(voters)
            .execute(&mut *tx)
            .await?;
            // The file apart from the seal's line (migration 0025), so reading the line never
            // reads the file.
            sqlx::query(
                "INSERT INTO poll_audit_files (question_id, body) VALUES ($1, $2) \
                 ON CONFLICT (question_id) DO UPDATE SET body = excluded.body",
            )
            .bind(question_id)
            .bind(&body)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        done
    });
    Ok(done > 0)
}

/// The people who voted on a poll, from its vote rows (one row at slot 0 each).
const VOTERS: &str = "SELECT COUNT(*) FROM votes WHERE question_id = $1 AND slot = 0";

/// A poll's counted votes as the audit file lists them: receipt hash (none for a vote from
/// before receipts) and choice text, a row per chosen choice (several with the same receipt
/// for a selection of several).
const AUDIT_ROWS: &str = "SELECT v.receipt_hash, c.choice_text FROM votes v \
     JOIN choices c ON c.id = v.choice_id WHERE v.question_id = $1";

/// The audit file's rows for a poll, read now ([`AUDIT_ROWS`]).
pub async fn audit_rows(db: &Db, question_id: i64) -> sqlx::Result<Vec<(Option<String>, String)>> {
    with_db!(db, p => sqlx::query_as(AUDIT_ROWS).bind(question_id).fetch_all(p).await)
}

/// A closed poll's seal (`poll_seals`, and its file in `poll_audit_files`).
#[derive(Clone, Debug, FromRow)]
pub struct Seal {
    pub sealed_at: i64,
    /// The vote lines of its audit file (one per chosen choice).
    pub votes: i64,
    /// The people who voted (as many as `votes` on a poll of one answer).
    pub voters: i64,
    pub digest: String,
    /// The audit file as published (empty when read by [`seal_summary`]).
    pub body: String,
}

/// A poll's seal with its audit file, if it is sealed.
pub async fn seal(db: &Db, question_id: i64) -> sqlx::Result<Option<Seal>> {
    with_db!(db, p => sqlx::query_as::<_, Seal>(
        "SELECT s.sealed_at, s.votes, COALESCE(s.voters, s.votes) AS voters, s.digest, f.body \
         FROM poll_seals s JOIN poll_audit_files f ON f.question_id = s.question_id \
         WHERE s.question_id = $1",
    )
    .bind(question_id)
    .fetch_optional(p)
    .await)
}

/// A poll's seal without its audit file (the results page's line).
pub async fn seal_summary(db: &Db, question_id: i64) -> sqlx::Result<Option<Seal>> {
    with_db!(db, p => sqlx::query_as::<_, Seal>(
        "SELECT sealed_at, votes, COALESCE(voters, votes) AS voters, digest, '' AS body FROM poll_seals WHERE question_id = $1",
    )
    .bind(question_id)
    .fetch_optional(p)
    .await)
}

/// Each choice's kept count (the triggers' `choice_counts`, without imported votes), by text.
pub async fn kept_counts(db: &Db, question_id: i64) -> sqlx::Result<Vec<(String, i64)>> {
    with_db!(db, p => sqlx::query_as::<_, (String, i64)>(
        "SELECT c.choice_text, CAST(COALESCE((SELECT SUM(n.votes) FROM choice_counts n \
         WHERE n.choice_id = c.id), 0) AS BIGINT) FROM choices c WHERE c.question_id = $1 \
         ORDER BY c.position, c.id",
    )
    .bind(question_id)
    .fetch_all(p)
    .await)
}

/// Opens a closed poll again: no closing time, no recorded close, no seal (the next close
/// seals it again). False: no such poll.
pub async fn reopen(db: &Db, question_id: i64) -> sqlx::Result<bool> {
    let done = with_db!(db, pool => {
        let mut tx = pool.begin_with(db.begin_write()).await?;
        let done = sqlx::query("UPDATE questions SET closes_at = NULL, closed_at = NULL WHERE id = $1")
            .bind(question_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM poll_seals WHERE question_id = $1")
            .bind(question_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        done
    });
    Ok(done > 0)
}

/// A published poll's closing time and recorded close, read now (not through any cache):
/// `None` if there is no such published poll.
pub async fn closing(
    db: &Db,
    question_id: i64,
) -> sqlx::Result<Option<(Option<i64>, Option<i64>)>> {
    with_db!(db, p => sqlx::query_as::<_, (Option<i64>, Option<i64>)>(
        "SELECT closes_at, closed_at FROM questions WHERE id = $1 AND pub_date <= $2",
    )
    .bind(question_id)
    .bind(db::now())
    .fetch_optional(p)
    .await)
}

/// Whether the user is active staff (who see every poll's results), read now.
pub async fn is_staff(db: &Db, user_id: i64) -> sqlx::Result<bool> {
    let row = with_db!(db, p => sqlx::query_scalar::<_, bool>(
        "SELECT is_staff AND is_active FROM users WHERE id = $1",
    )
    .bind(user_id)
    .fetch_optional(p)
    .await)?;
    Ok(row.unwrap_or(false))
}

/// A published poll's results visibility (`polls::closing::Visibility`'s key) and how many
/// choices it takes, or `None`.
pub async fn poll_rules(db: &Db, question_id: i64) -> sqlx::Result<Option<(String, i64)>> {
    with_db!(db, p => sqlx::query_as::<_, (String, i64)>(
        "SELECT results_visibility, max_choices FROM questions WHERE id = $1 AND pub_date <= $2",
    )
    .bind(question_id)
    .bind(db::now())
    .fetch_optional(p)
    .await)
}
