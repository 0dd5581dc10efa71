//! A poll's results as CSV: `/polls/{id}/results.csv` and `pollstr export-results`.
//!
//! One line per choice, in the poll's order, under the header `choice,votes,share`: the choice's
//! text, its votes (imported and cast), and its share of all votes in percent with one decimal.
//! Fields are quoted as RFC 4180 says when they need it, and a text that a spreadsheet would run
//! as a formula (starting with `=`, `+`, `-`, `@`, a tab or a carriage return) is written with a
//! leading `'`, as OWASP's CSV injection advice says.

use super::store::{self, ChoiceResult};
use crate::db::Db;

/// `pollstr export-results`: a published poll's results as CSV (`None`: no such poll), final
/// if it is closed (its close is recorded first).
pub async fn export(db: &Db, question_id: i64) -> sqlx::Result<Option<String>> {
    let Some(view) = store::poll_view(db, question_id, 0).await? else {
        return Ok(None);
    };
    if view.question.closed_at.is_none() && view.question.is_closed(crate::db::now()) {
        super::closing::ensure_recorded(db, question_id).await?;
        return Ok(store::poll_view(db, question_id, 0)
            .await?
            .map(|v| results_csv(&v.choices)));
    }
    Ok(Some(results_csv(&view.choices)))
}

/// The results as CSV (lines end with CRLF, as RFC 4180 says).
pub fn results_csv(choices: &[ChoiceResult]) -> String {
    let total: i64 = choices.iter().map(|c| c.votes).sum();
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
        let csv = results_csv(&[
            choice("=HYPERLINK(\"http://x\")", 1),
            choice("+1", 1),
            choice("-2", 0),
            choice("@SUM(A1)", 0),
            choice("Plain, with a comma", 1),
        ]);
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
    fn no_votes_is_no_share() {
        assert_eq!(
            results_csv(&[choice("a", 0)]),
            "choice,votes,share\r\na,0,0.0\r\n"
        );
    }
}
