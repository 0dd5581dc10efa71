//! A poll's results as CSV: `/polls/{id}/results.csv` and `pollstr export-results`.
//!
//! One line per choice, in the poll's order, under the header `choice,votes,share`: the choice's
//! text, its votes (imported and cast), and its share of the voters in percent with one decimal
//! (on a poll of one answer, of all votes; on a poll of several, the shares add up to more).
//! Fields are quoted as RFC 4180 says when they need it, and a text that a spreadsheet would run
//! as a formula (starting with `=`, `+`, `-`, `@`, a tab or a carriage return) is written with a
//! leading `'`, as OWASP's CSV injection advice says.

use super::store::{self, ChoiceResult, PollView};
use crate::db::Db;

/// `pollstr export-results`: a published poll's results as CSV (`None`: no such poll), final
/// if it is closed (its close is recorded first).
pub async fn export(db: &Db, question_id: i64) -> sqlx::Result<Option<String>> {
    let Some(view) = store::poll_view(db, question_id, 0).await? else {
        return Ok(None);
    };
    let view = if view.question.closed_at.is_none() && view.question.is_closed(crate::db::now()) {
        super::closing::ensure_recorded(db, question_id).await?;
        match store::poll_view(db, question_id, 0).await? {
            Some(v) => v,
            None => return Ok(None),
        }
    } else {
        view
    };
    let voters = voters(db, &view).await?;
    Ok(Some(results_csv(&view.choices, voters)))
}

/// A poll's number of voters: its votes on a poll of one answer, else as kept
/// ([`store::poll_voters`], one query).
pub async fn voters(db: &Db, view: &PollView) -> sqlx::Result<i64> {
    if view.question.max_choices > 1 {
        store::poll_voters(db, view.question.id).await
    } else {
        Ok(view.choices.iter().map(|c| c.votes).sum())
    }
}

/// The results as CSV (lines end with CRLF, as RFC 4180 says); the shares are of `voters`.
pub fn results_csv(choices: &[ChoiceResult], voters: i64) -> String {
    let total = voters;
    let mut out = String::from("choice,votes,share\r\n");
    for c in choices {
        let share = if total > 0 {
            // Tenths of a percent, rounded half up, in whole numbers.
            let tenths = (c.votes * 1000 * 2 + total) / (2 * total);
            format!("{}.{}", tenths / 10, tenths % 10)
        } else {
            "0.0".to_string()
        };
        out.push_str(&field(&c.choice_text));
        out.push(',');
        out.push_str(&c.votes.to_string());
        out.push(',');
        out.push_str(&share);
        out.push_str("\r\n");
    }
    out
}

pub use super::csv::field;

#[cfg(test)]
mod tests {
    use super::*;

    fn choice(text: &str, votes: i64) -> ChoiceResult {
        ChoiceResult {
            id: 1,
            choice_text: text.into(),
            votes,
        }
    }

    #[test]
    fn formulas_are_neutralised_and_fields_quoted() {
        let csv = results_csv(
            &[
                choice("=HYPERLINK(\"http://x\")", 1),
                choice("+1", 1),
                choice("-2", 0),
                choice("@SUM(A1)", 0),
                choice("Plain, with a comma", 1),
            ],
            3,
        );
        let lines: Vec<&str> = csv.split("\r\n").collect();
        assert_eq!(lines[0], "choice,votes,share");
        assert_eq!(lines[1], "\"'=HYPERLINK(\"\"http://x\"\")\",1,33.3");
        assert_eq!(lines[2], "'+1,1,33.3");
        assert_eq!(lines[3], "'-2,0,0.0");
        assert_eq!(lines[4], "'@SUM(A1),0,0.0");
        assert_eq!(lines[5], "\"Plain, with a comma\",1,33.3");
        assert_eq!(field("\tx"), "'\tx");
    }

    #[test]
    fn shares_are_of_the_voters() {
        // Several answers: 4 voters, 3 chose a, 2 chose b.
        assert_eq!(
            results_csv(&[choice("a", 3), choice("b", 2)], 4),
            "choice,votes,share\r\na,3,75.0\r\nb,2,50.0\r\n"
        );
    }

    #[test]
    fn no_votes_is_no_share() {
        assert_eq!(
            results_csv(&[choice("a", 0)], 0),
            "choice,votes,share\r\na,0,0.0\r\n"
        );
    }
}
