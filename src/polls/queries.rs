//! Queries on questions, choices and votes.

use sqlx::FromRow;

use crate::db::{self, Db};
use crate::with_db;

#[derive(Clone, Debug, FromRow)]
pub struct Question {
    pub id: i64,
    pub question_text: String,
    pub pub_date: i64,
}

#[derive(Clone, Debug, FromRow)]
pub struct Choice {
    pub id: i64,
    pub question_id: i64,
    pub choice_text: String,
}

#[derive(Clone, Debug, FromRow)]
pub struct ChoiceResult {
    pub id: i64,
    pub choice_text: String,
    pub votes: i64,
}

/// Published questions (not dated in the future), latest first.
pub async fn published(db: &Db, limit: i64, offset: i64) -> sqlx::Result<Vec<Question>> {
    with_db!(db, p => sqlx::query_as::<_, Question>(
        "SELECT id, question_text, pub_date FROM questions WHERE pub_date <= $1 \
         ORDER BY pub_date DESC, id DESC LIMIT $2 OFFSET $3",
    )
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

/// The choices of the given questions, in id order.
pub async fn choices_of(db: &Db, question_ids: &[i64]) -> sqlx::Result<Vec<Choice>> {
    if question_ids.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders: Vec<String> = (1..=question_ids.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT id, question_id, choice_text FROM choices WHERE question_id IN ({}) ORDER BY id",
        placeholders.join(", ")
    );
    with_db!(db, p => {
        let mut q = sqlx::query_as::<_, Choice>(&sql);
        for id in question_ids {
            q = q.bind(*id);
        }
        q.fetch_all(p).await
    })
}

/// A published question by id.
pub async fn published_question(db: &Db, id: i64) -> sqlx::Result<Option<Question>> {
    with_db!(db, p => sqlx::query_as::<_, Question>(
        "SELECT id, question_text, pub_date FROM questions WHERE id = $1 AND pub_date <= $2",
    )
    .bind(id)
    .bind(db::now())
    .fetch_optional(p)
    .await)
}

/// Each choice with its count: imported votes plus one per user who chose it.
pub async fn results(db: &Db, question_id: i64) -> sqlx::Result<Vec<ChoiceResult>> {
    with_db!(db, p => sqlx::query_as::<_, ChoiceResult>(
        "SELECT c.id, c.choice_text, \
                c.base_votes + (SELECT COUNT(*) FROM votes v WHERE v.choice_id = c.id) AS votes \
         FROM choices c WHERE c.question_id = $1 ORDER BY c.id",
    )
    .bind(question_id)
    .fetch_all(p)
    .await)
}

/// The choice this user voted for on this question, if any.
pub async fn vote_of(db: &Db, user_id: i64, question_id: i64) -> sqlx::Result<Option<i64>> {
    with_db!(db, p => sqlx::query_scalar::<_, i64>(
        "SELECT choice_id FROM votes WHERE user_id = $1 AND question_id = $2",
    )
    .bind(user_id)
    .bind(question_id)
    .fetch_optional(p)
    .await)
}

/// Records the user's vote, replacing an earlier one on the same question, in one statement
/// (so concurrent votes cannot lose or double a count). False when the choice is not one of
/// this question's.
pub async fn cast_vote(
    db: &Db,
    user_id: i64,
    question_id: i64,
    choice_id: i64,
) -> sqlx::Result<bool> {
    let done = with_db!(db, p => sqlx::query(
        "INSERT INTO votes (user_id, question_id, choice_id, voted_at) \
         SELECT $1, question_id, id, $2 FROM choices WHERE id = $3 AND question_id = $4 \
         ON CONFLICT (user_id, question_id) DO UPDATE SET choice_id = excluded.choice_id, voted_at = excluded.voted_at",
    )
    .bind(user_id)
    .bind(db::now())
    .bind(choice_id)
    .bind(question_id)
    .execute(p)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(done > 0)
}
