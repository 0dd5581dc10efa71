//! Votes go through one writer task per server, which writes whatever votes are waiting in one
//! statement (one transaction, one commit).
//!
//! SQLite has one writer at a time. When many requests each wrote their own vote, the losers
//! of the write lock slept in SQLite's busy handler (1, 2, 5, 10, 15, 20, 25… ms), and those
//! sleeps were the vote's p99. Here votes wait in a queue instead, in order, and a busy second
//! costs one commit per batch rather than one per vote.
//!
//! On PostgreSQL a vote written alone cost a statement, its counter triggers and a commit (a
//! WAL flush), and the commits of one popular poll's voters queued on the same few counter rows'
//! locks. In a batch, the counter triggers (per statement) update each counter row once for
//! all its votes, and one commit serves them all (A/B on 2 cores: 3.6k → 9.3k votes/s, p99
//! 22–29 → 11–13 ms). Several servers each have their writer. Each counter trigger takes its rows
//! in (choice, shard) order, and a batch that fails for any reason, a deadlock between two
//! servers' batches included, is written again one vote at a time.
//!
//! A vote on a poll of several answers (a selection) goes through the same queue, in order
//! with the others: a batch's selections are written in one transaction of two statements
//! (`store::cast_selections`: the rows, then each voter's rows past their new selection),
//! beside the one statement of its one-answer votes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Notify};

use super::cache::PollCache;
use super::receipt::Receipt;
use super::store;
use crate::db::Db;
use crate::error::{AppError, AppResult};
use crate::telemetry::Telemetry;

/// The most votes committed in one transaction.
const MAX_BATCH: usize = 128;
/// Votes waiting beyond this make the next voter wait for room (no memory without bound).
const QUEUE: usize = 1024;

struct Ballot {
    user_id: i64,
    question_id: i64,
    /// The choice of a one-answer vote; the first of a selection.
    choice_id: i64,
    /// A selection on a poll of several answers (its first is `choice_id`); `None`: one answer.
    selection: Option<Vec<i64>>,
    /// The hash of the vote's receipt (`receipt`), stored with it.
    receipt_hash: String,
    /// Whether the vote counted (false: not a choice of a published poll).
    reply: oneshot::Sender<AppResult<bool>>,
}

#[derive(Clone)]
pub struct VoteQueue {
    tx: mpsc::Sender<Ballot>,
    pending: Arc<Pending>,
}

/// Votes handed to the writer and not yet answered (the queue's depth, and what shutdown
/// waits for).
#[derive(Default)]
struct Pending {
    count: AtomicUsize,
    none_left: Notify,
}

impl Pending {
    fn done(&self, n: usize) {
        if self.count.fetch_sub(n, Ordering::AcqRel) == n {
            self.none_left.notify_waiters();
        }
    }
}

impl VoteQueue {
    /// Starts the writer task (on the current Tokio runtime). It updates `cache` as each batch
    /// commits, in commit order, before any voter hears back.
    /// Batch sizes and votes written go to `telemetry`.
    pub fn start(db: Db, cache: Arc<PollCache>, telemetry: Telemetry) -> VoteQueue {
        let (tx, rx) = mpsc::channel(QUEUE);
        let pending = Arc::new(Pending::default());
        tokio::spawn(write_votes(db, cache, rx, pending.clone(), telemetry));
        VoteQueue { tx, pending }
    }

    /// Votes handed to the writer and not yet committed (or refused).
    pub fn depth(&self) -> usize {
        self.pending.count.load(Ordering::Acquire)
    }

    /// Waits until every vote handed to the writer so far has been committed or refused (at
    /// shutdown, after the last request: a vote whose voter hung up is written all the same).
    pub async fn flushed(&self) {
        loop {
            let notified = self.pending.none_left.notified();
            if self.depth() == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Casts the vote and waits for its commit. Same answer as [`store::cast_vote`].
    pub async fn cast(&self, user_id: i64, question_id: i64, choice_id: i64) -> AppResult<bool> {
        self.cast_with(user_id, question_id, choice_id, Receipt::new().hash)
            .await
    }

    /// [`VoteQueue::cast`], storing this receipt hash with the vote.
    pub async fn cast_with(
        &self,
        user_id: i64,
        question_id: i64,
        choice_id: i64,
        receipt_hash: String,
    ) -> AppResult<bool> {
        self.send(user_id, question_id, choice_id, None, receipt_hash)
            .await
    }

    /// A selection on a poll of several answers (at least one choice, none twice), replacing
    /// the voter's earlier vote on it, stored with this receipt hash; waits for its commit.
    /// Same answer as [`store::cast_selections`].
    pub async fn cast_selection(
        &self,
        user_id: i64,
        question_id: i64,
        choices: Vec<i64>,
        receipt_hash: String,
    ) -> AppResult<bool> {
        let Some(&first) = choices.first() else {
            return Ok(false);
        };
        self.send(user_id, question_id, first, Some(choices), receipt_hash)
            .await
    }

    async fn send(
        &self,
        user_id: i64,
        question_id: i64,
        choice_id: i64,
        selection: Option<Vec<i64>>,
        receipt_hash: String,
    ) -> AppResult<bool> {
        let (reply, answer) = oneshot::channel();
        let ballot = Ballot {
            user_id,
            question_id,
            choice_id,
            selection,
            receipt_hash,
            reply,
        };
        // Counted in the same step as it is queued: a voter who hangs up while waiting for
        // room leaves no count behind.
        let Ok(room) = self.tx.reserve().await else {
            return Err(writer_gone());
        };
        self.pending.count.fetch_add(1, Ordering::AcqRel);
        room.send(ballot);
        answer.await.unwrap_or_else(|_| Err(writer_gone()))
    }
}

fn writer_gone() -> AppError {
    AppError::Unavailable(anyhow::anyhow!("the vote writer has stopped"))
}

async fn write_votes(
    db: Db,
    cache: Arc<PollCache>,
    mut rx: mpsc::Receiver<Ballot>,
    pending: Arc<Pending>,
    telemetry: Telemetry,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let n = batch.len();
        telemetry.observe("pollstr_vote_batch_size", &[], n as f64);
        let written = write_batch(&db, &cache, &mut batch).await;
        telemetry.add("pollstr_votes_written_total", &[], written);
        pending.done(n);
    }
}

/// Writes the batch and answers its voters; how many votes were written.
async fn write_batch(db: &Db, cache: &PollCache, batch: &mut Vec<Ballot>) -> u64 {
    let mut written = 0;
    match commit(db, batch).await {
        Ok(counted) => {
            for (ballot, counted) in batch.drain(..).zip(counted) {
                written += u64::from(counted);
                answer(cache, ballot, Ok(counted));
            }
        }
        // No statement was refused: the database could not be reached, or the connection
        // broke. Trying each vote again alone would make every voter wait out the outage
        // once more, in turn; they are told to try again instead (a vote is an upsert, so
        // one that did commit before the break is not doubled by its retry).
        Err(e) if !matches!(e, sqlx::Error::Database(_)) => {
            tracing::warn!(error = %e, votes = batch.len(), "a batch of votes failed: database unavailable");
            for ballot in batch.drain(..) {
                let error = anyhow::anyhow!("the vote could not be written: {e}");
                answer(cache, ballot, Err(AppError::Unavailable(error)));
            }
        }
        // A statement was refused (a bad vote, or on PostgreSQL a deadlock with another
        // server's batch). One bad vote must not fail the others: each is tried again alone.
        Err(e) => {
            tracing::warn!(error = %e, votes = batch.len(), "a batch of votes failed; casting them one by one");
            for ballot in batch.drain(..) {
                let result = cast_alone(db, &ballot).await.map_err(AppError::from);
                written += u64::from(matches!(result, Ok(true)));
                answer(cache, ballot, result);
            }
        }
    }
    written
}

/// One ballot written alone (its own statement or transaction).
async fn cast_alone(db: &Db, ballot: &Ballot) -> sqlx::Result<bool> {
    match &ballot.selection {
        None => {
            store::cast_vote_with(
                db,
                ballot.user_id,
                ballot.question_id,
                ballot.choice_id,
                &ballot.receipt_hash,
            )
            .await
        }
        Some(choices) => Ok(store::cast_selections(db, &[selection(ballot, choices)])
            .await?
            .first()
            .copied()
            .unwrap_or(false)),
    }
}

fn selection<'a>(ballot: &'a Ballot, choices: &'a [i64]) -> store::Selection<'a> {
    store::Selection {
        user_id: ballot.user_id,
        question_id: ballot.question_id,
        choices,
        receipt_hash: &ballot.receipt_hash,
    }
}

async fn commit(db: &Db, batch: &[Ballot]) -> sqlx::Result<Vec<bool>> {
    let mut keys: Vec<(i64, i64)> = batch.iter().map(|b| (b.user_id, b.question_id)).collect();
    keys.sort_unstable();
    keys.dedup();
    let several = batch.iter().any(|b| b.selection.is_some());
    if keys.len() < batch.len() && several {
        // A user voted twice on one poll in this batch, and a selection is among the votes:
        // each alone, in order.
        let mut counted = Vec::with_capacity(batch.len());
        for ballot in batch {
            counted.push(cast_alone(db, ballot).await?);
        }
        return Ok(counted);
    }
    let ballots: Vec<(i64, i64, i64)> = batch
        .iter()
        .filter(|b| b.selection.is_none())
        .map(|b| (b.user_id, b.question_id, b.choice_id))
        .collect();
    let receipts: Vec<&str> = batch
        .iter()
        .filter(|b| b.selection.is_none())
        .map(|b| b.receipt_hash.as_str())
        .collect();
    if !several {
        if keys.len() == ballots.len() {
            // The usual case: one statement (one round trip, one commit).
            return store::cast_votes(db, &ballots, &receipts).await;
        }
        // A user voted twice on one poll in this batch: one statement per vote, in order, in
        // one transaction.
        return store::cast_votes_in_order(db, &ballots, &receipts).await;
    }
    // One statement for the one-answer votes, one transaction for the selections.
    let mut singles = store::cast_votes(db, &ballots, &receipts)
        .await?
        .into_iter();
    let selections: Vec<store::Selection> = batch
        .iter()
        .filter_map(|b| Some(selection(b, b.selection.as_deref()?)))
        .collect();
    let mut multis = store::cast_selections(db, &selections).await?.into_iter();
    Ok(batch
        .iter()
        .map(|b| {
            let next = if b.selection.is_some() {
                multis.next()
            } else {
                singles.next()
            };
            next.unwrap_or(false)
        })
        .collect())
}

fn answer(cache: &PollCache, ballot: Ballot, result: AppResult<bool>) {
    if let Ok(true) = result {
        cache.voted(ballot.user_id, ballot.question_id, ballot.choice_id);
    }
    // The voter may have gone (connection closed); the vote stands all the same.
    let _ = ballot.reply.send(result);
}
