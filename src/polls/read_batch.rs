//! On PostgreSQL, the poll pages' reads of a session and a vote, from many requests in one
//! statement.
//!
//! Under load, many poll pages wait for a database connection at once, and each statement
//! costs a round trip and PostgreSQL's per-statement work, whatever it reads. Here a few
//! reader tasks (one per connection of the [`Lane`]) each take every read waiting when they
//! become free, up to [`MAX_BATCH`], and answer them all with one statement
//! ([`store::sessions_and_votes`]). A read waits only while the readers are busy: alone, it
//! is sent at once. Each read is answered by a statement that began after it was asked, so a
//! batched read is as fresh as one of its own: a logout or a vote that finished before the
//! request began is seen.
//!
//! The statements run in the readers' tasks, not in the requests': a request that goes away
//! while waiting cancels nothing on a connection.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Mutex};

use super::store::{self, SessionAndVote, VoteAsk};
use crate::db::lane::Lane;

/// The most reads answered by one statement.
pub const MAX_BATCH: usize = 64;
/// Reads waiting beyond this make the next request wait for room.
const QUEUE: usize = 1024;

struct Ask {
    read: VoteAsk,
    /// `None`: the statement failed (the request then reads on its own).
    reply: oneshot::Sender<Option<SessionAndVote>>,
}

pub struct ReadBatch {
    tx: mpsc::Sender<Ask>,
}

impl ReadBatch {
    /// Starts one reader per connection the lane may lend (on the current Tokio runtime).
    pub fn start(lane: Arc<Lane>) -> ReadBatch {
        let (tx, rx) = mpsc::channel(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..lane.size() {
            tokio::spawn(reader(lane.clone(), rx.clone()));
        }
        ReadBatch { tx }
    }

    /// The session row, its user's vote on the question and whether `snapshot` saw it
    /// ([`store::sessions_and_votes`]); `None` if the read failed.
    pub async fn ask(&self, read: VoteAsk) -> Option<SessionAndVote> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(Ask { read, reply }).await.ok()?;
        answer.await.ok().flatten()
    }
}

/// Takes what is waiting (at least one read), answers it with one statement, and again.
async fn reader(lane: Arc<Lane>, queue: Arc<Mutex<mpsc::Receiver<Ask>>>) {
    let mut batch: Vec<Ask> = Vec::with_capacity(MAX_BATCH);
    loop {
        {
            let mut queue = queue.lock().await;
            match queue.recv().await {
                Some(ask) => batch.push(ask),
                None => return,
            }
            while batch.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(ask) => batch.push(ask),
                    Err(_) => break,
                }
            }
        }
        let reads: Vec<&VoteAsk> = batch.iter().map(|a| &a.read).collect();
        let answers = match lane.acquire().await {
            Ok(mut conn) => match store::sessions_and_votes(&mut conn, &reads).await {
                Ok(rows) => {
                    conn.done();
                    Some(rows)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "batched poll page read failed");
                    None
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "no connection for the poll page reads");
                None
            }
        };
        match answers {
            Some(rows) => {
                for (ask, row) in batch.drain(..).zip(rows) {
                    let _ = ask.reply.send(Some(row));
                }
            }
            None => {
                for ask in batch.drain(..) {
                    let _ = ask.reply.send(None);
                }
            }
        }
    }
}
