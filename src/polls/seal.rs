//! A closed poll's sealed result, checked again: `pollstr verify-poll ID [--receipt R]`
//! (docs/polls.md, "Receipts and the sealed result").
//!
//! The seal (`poll_seals`) is written with the close (`store::record_close`): the audit file as
//! published and its digest. Verifying reads the votes again, rebuilds the audit file
//! (`receipt::audit_file`) and its digest, and compares them, the number of votes and each
//! choice's kept count with what was published, naming every difference. It reads the whole
//! poll's votes once (no hold: a sealed poll takes no vote).

use std::collections::{BTreeMap, BTreeSet};

use super::csv::field;
use super::receipt;
use super::store;
use crate::db::Db;

/// What `verify-poll` found: whether everything matches, and what to say, line by line.
#[derive(Debug)]
pub struct Verdict {
    pub ok: bool,
    pub lines: Vec<String>,
}

/// Each vote line of an audit file, by receipt hash: the choice fields of its lines.
fn by_receipt(body: &str) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in body
        .strip_prefix(receipt::AUDIT_HEADER)
        .unwrap_or(body)
        .lines()
    {
        let (hash, choice) = line.split_once(',').unwrap_or((line, ""));
        map.entry(hash.to_string())
            .or_default()
            .push(choice.to_string());
    }
    map
}

/// Each choice field's number of votes in an audit file.
fn per_choice(votes: &BTreeMap<String, Vec<String>>) -> BTreeMap<String, i64> {
    let mut counts = BTreeMap::new();
    for choice in votes.values().flatten() {
        *counts.entry(choice.clone()).or_insert(0) += 1;
    }
    counts
}

/// Checks a sealed poll against its votes now; `None` if the poll is not sealed (not closed,
/// or no such poll). `receipt_hash`: also say whether this receipt's vote is in the file.
pub async fn verify(
    db: &Db,
    question_id: i64,
    receipt_hash: Option<&str>,
) -> sqlx::Result<Option<Verdict>> {
    let Some(seal) = store::seal(db, question_id).await? else {
        return Ok(None);
    };
    let mut ok = true;
    let mut lines = vec![format!(
        "Poll {question_id} was sealed at {} with {} votes, digest {}.",
        crate::web::when(seal.sealed_at),
        seal.votes,
        seal.digest
    )];
    if receipt::digest(&seal.body) != seal.digest {
        ok = false;
        lines.push("The published audit file does not hash to the published digest.".into());
    }
    let rows = store::audit_rows(db, question_id).await?;
    let body = receipt::audit_file(&rows);
    let digest = receipt::digest(&body);
    let published = by_receipt(&seal.body);
    let now = by_receipt(&body);
    if digest == seal.digest {
        lines.push(format!(
            "The votes in the database give the same file and digest ({} votes).",
            rows.len()
        ));
    } else {
        ok = false;
        lines.push(format!(
            "The votes in the database give another file: digest {digest}, not {}.",
            seal.digest
        ));
        let hashes: BTreeSet<&String> = published.keys().chain(now.keys()).collect();
        for hash in hashes {
            let (was, is) = (published.get(hash), now.get(hash));
            if was != is {
                let show =
                    |v: Option<&Vec<String>>| v.map_or("nothing".into(), |v| v.join(" and "));
                lines.push(format!(
                    "  vote {hash}: published {}, now {}",
                    show(was),
                    show(is)
                ));
            }
        }
    }
    let published_votes: usize = published.values().map(Vec::len).sum();
    if seal.votes != rows.len() as i64 || published_votes as i64 != seal.votes {
        ok = false;
        lines.push(format!(
            "Votes: {} published, {published_votes} lines in the published file, {} rows now.",
            seal.votes,
            rows.len()
        ));
    }
    let in_file = per_choice(&published);
    for (text, kept) in store::kept_counts(db, question_id).await? {
        let choice = field(&text);
        let filed = in_file.get(&choice).copied().unwrap_or(0);
        let counted = rows.iter().filter(|(_, c)| *c == text).count() as i64;
        if kept != filed || counted != filed {
            ok = false;
            lines.push(format!(
                "Choice {choice}: {filed} in the published file, kept count {kept}, {counted} vote rows now."
            ));
        }
    }
    if let Some(hash) = receipt_hash {
        match published.get(hash) {
            Some(choices) => lines.push(format!(
                "The receipt's hash {hash} is in the published file, for {}.",
                choices.join(" and ")
            )),
            None => {
                ok = false;
                lines.push(format!(
                    "The receipt's hash {hash} is not in the published file."
                ));
            }
        }
    }
    lines.push(if ok {
        "Everything matches what was published.".into()
    } else {
        "This poll does NOT match what was published.".into()
    });
    Ok(Some(Verdict { ok, lines }))
}
