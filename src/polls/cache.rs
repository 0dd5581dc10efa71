//! An in-process cache of what the poll pages read, so a busy page needs no query.
//!
//! - **The public list**, on both backends, for [`TTL`]: it changes only when an admin loads a
//!   fixture (`pollstr loaddata`, another process) or a poll's publication date passes.
//! - **On SQLite only**: each poll with its counts, and each user's vote on it. SQLite runs one
//!   `pollstr serve` (PostgreSQL is the way to many instances), so every vote goes through this
//!   process, which updates the cache as the vote commits: a voter sees their vote at once. A
//!   fixture loaded by another process shows within [`TTL`].
//! - **On PostgreSQL**: each poll with its counts and the snapshot they were read under, for
//!   [`TTL`]. Another instance may have counted a vote a moment ago, so the snapshot decides:
//!   a voter whose vote that snapshot did not see gets the poll read again (`prefetch`). Other
//!   people's votes show within [`TTL`], as an edit of the poll does.
//! - **Who sees each poll's results and how many choices it takes**, on both backends, for
//!   [`TTL`]: what a vote and its answer need, which votes do not change.
//! - **A closed poll's seal line** (its digest and totals, not its audit file), on both backends,
//!   for [`TTL`]: written once with the close, in the same transaction, and gone only when staff
//!   reopen the poll. Read from the database on every view, it made a closed poll's pages cost
//!   about twice an open poll's on SQLite (p99 15 ms) and three times on PostgreSQL at 1M votes
//!   (docs/benchmarks-history.md); kept, they cost what an open poll's results do.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Bytes;
use moka::sync::Cache;

use super::closing::Visibility;
use super::store::{ChoiceResult, Question, Seal};
use super::PollCard;
use crate::db::cache::{Generation, GuardedCache};

/// How long cached poll data may lag behind a change made outside this process.
pub const TTL: Duration = Duration::from_secs(1);
/// Bounds, so that odd page numbers or many users cannot grow memory without end.
const MAX_PAGES: u64 = 256;
const MAX_POLLS: u64 = 4_096;
const MAX_VOTES: u64 = 100_000;

/// One page of the public list.
#[derive(Debug)]
pub struct PollList {
    pub polls: Vec<PollCard>,
    pub pages: i64,
    /// The page as an anonymous visitor with no message sees it, rendered once.
    pub anonymous_html: OnceLock<Bytes>,
}

/// A published poll with its choices and counts, as every voter sees it.
#[derive(Debug)]
pub struct PollData {
    pub question: Question,
    pub choices: Vec<ChoiceResult>,
}

/// A poll read on PostgreSQL, and the snapshot it was read under (`pg_current_snapshot()`).
#[derive(Debug)]
pub struct SnapshotPoll {
    pub poll: Arc<PollData>,
    pub snapshot: String,
}

pub struct PollCache {
    /// Page number → the page (`None`: past the end).
    pub pages: GuardedCache<i64, Option<Arc<PollList>>>,
    /// Question id → the poll (`None`: not published). SQLite only.
    pub polls: Option<GuardedCache<i64, Option<Arc<PollData>>>>,
    /// (user id, question id) → the choice voted for (`None`: no vote). SQLite only.
    pub votes: Option<GuardedCache<(i64, i64), Option<i64>>>,
    /// Question id → the published poll and its snapshot. PostgreSQL only.
    pub snapshots: Option<GuardedCache<i64, Arc<SnapshotPoll>>>,
    /// Question id → who sees its results and how many choices it takes (`None`: not
    /// published), for a vote and its answer: votes do not change them, so they stay kept
    /// through them.
    pub rules: GuardedCache<i64, Option<Rules>>,
    /// Question id → its seal, without the audit file (only a sealed poll is kept: a close
    /// writes its seal in the same transaction, so a poll seen closed has one).
    pub seals: GuardedCache<i64, Arc<Seal>>,
}

/// What a vote needs to know of its poll.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rules {
    pub visibility: Visibility,
    /// 1: one answer (the vote statement's); more: a selection.
    pub max_choices: i64,
}

/// The generations of the poll and vote caches, taken before reading a poll view.
pub struct ViewGenerations {
    poll: Option<Generation>,
    vote: Option<Generation>,
}

impl PollCache {
    /// `exclusive`: this process is the only writer of votes (SQLite).
    pub fn new(exclusive: bool) -> Self {
        fn build<K, V>(max: u64) -> GuardedCache<K, V>
        where
            K: std::hash::Hash + Eq + Send + Sync + Clone + 'static,
            V: Clone + Send + Sync + 'static,
        {
            GuardedCache::new(Cache::builder().max_capacity(max).time_to_live(TTL).build())
        }
        PollCache {
            pages: build(MAX_PAGES),
            polls: exclusive.then(|| build(MAX_POLLS)),
            votes: exclusive.then(|| build(MAX_VOTES)),
            snapshots: (!exclusive).then(|| build(MAX_POLLS)),
            rules: build(MAX_POLLS),
            seals: build(MAX_POLLS),
        }
    }

    /// The poll, if cached (`Some(None)`: known not to be published).
    pub fn poll(&self, question_id: i64) -> Option<Option<Arc<PollData>>> {
        self.polls.as_ref()?.get(&question_id)
    }

    /// The user's vote on the question, if cached (`Some(None)`: known not to have voted).
    pub fn vote(&self, user_id: i64, question_id: i64) -> Option<Option<i64>> {
        self.votes.as_ref()?.get(&(user_id, question_id))
    }

    pub fn view_generations(&self) -> ViewGenerations {
        ViewGenerations {
            poll: self.polls.as_ref().map(|c| c.generation()),
            vote: self.votes.as_ref().map(|c| c.generation()),
        }
    }

    pub fn fill_poll(&self, g: &ViewGenerations, question_id: i64, poll: Option<Arc<PollData>>) {
        if let (Some(polls), Some(g)) = (&self.polls, g.poll) {
            polls.fill(g, question_id, poll);
        }
    }

    pub fn fill_vote(
        &self,
        g: &ViewGenerations,
        user_id: i64,
        question_id: i64,
        mine: Option<i64>,
    ) {
        if let (Some(votes), Some(g)) = (&self.votes, g.vote) {
            votes.fill(g, (user_id, question_id), mine);
        }
    }

    /// The poll as last read on PostgreSQL, with its snapshot, if kept.
    pub fn snapshot_poll(&self, question_id: i64) -> Option<Arc<SnapshotPoll>> {
        self.snapshots.as_ref()?.get(&question_id)
    }

    /// The generation of the kept PostgreSQL polls, taken before reading one (`None` on SQLite).
    pub fn snapshot_generation(&self) -> Option<Generation> {
        self.snapshots.as_ref().map(|c| c.generation())
    }

    pub fn fill_snapshot_poll(
        &self,
        g: Option<Generation>,
        question_id: i64,
        poll: Arc<SnapshotPoll>,
    ) {
        if let (Some(snapshots), Some(g)) = (&self.snapshots, g) {
            snapshots.fill(g, question_id, poll);
        }
    }

    /// A vote was committed: the poll's counts are read again on next use, and the voter's
    /// choice is known.
    pub fn voted(&self, user_id: i64, question_id: i64, choice_id: i64) {
        if let Some(polls) = &self.polls {
            polls.invalidate(&question_id);
        }
        if let Some(snapshots) = &self.snapshots {
            snapshots.invalidate(&question_id);
        }
        if let Some(votes) = &self.votes {
            votes.set((user_id, question_id), Some(choice_id));
        }
    }

    /// A poll changed (its close was recorded): read it again on next use.
    pub fn forget_poll(&self, question_id: i64) {
        if let Some(polls) = &self.polls {
            polls.invalidate(&question_id);
        }
        if let Some(snapshots) = &self.snapshots {
            snapshots.invalidate(&question_id);
        }
        self.pages.clear();
        self.rules.invalidate(&question_id);
        self.seals.invalidate(&question_id);
    }

    /// Forgets everything (after this process loaded a fixture).
    pub fn clear(&self) {
        self.pages.clear();
        self.rules.clear();
        self.seals.clear();
        if let Some(polls) = &self.polls {
            polls.clear();
        }
        if let Some(votes) = &self.votes {
            votes.clear();
        }
        if let Some(snapshots) = &self.snapshots {
            snapshots.clear();
        }
    }
}
