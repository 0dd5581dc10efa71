//! Polls with several answers (`max_choices`, docs/polls.md "Several answers"): checkboxes, a
//! vote that sets the voter's whole selection, bad selections refused with nothing written,
//! the kept counts and voters under a burst of changing selections, receipts and the sealed
//! audit file, the CSV export's shares of voters, the admin's field and the fixtures, and a
//! choice deleted from under the selections.

use reqwest::StatusCode;

use crate::both_backends;
use crate::helpers::{spawn_app, Backend, Browser, TestApp};

both_backends!(
    a_selection_is_voted_and_replaced_whole,
    bad_selections_are_refused_with_nothing_written,
    a_burst_of_changing_selections_keeps_counts_equal_to_the_rows,
    receipts_and_the_audit_file_of_a_poll_of_several_answers,
    the_csv_export_gives_each_choices_share_of_the_voters,
    the_admin_sets_how_many_choices_a_voter_may_pick,
    max_choices_and_selections_round_trip_through_fixtures,
    a_vote_follows_a_change_of_max_choices_made_elsewhere,
    a_deleted_choice_leaves_every_voter_with_another_choice_counted,
    a_choice_deleted_during_a_burst_of_changed_selections_leaves_each_as_voted,
);

async fn app(backend: Backend) -> TestApp {
    TestApp::seeded_for_many_voters(backend).await
}

async fn voters(app: &TestApp, n: usize) -> Vec<Browser> {
    app.phone_voters("picker", 5, n).await
}

/// Posts these `choice` fields (as checkboxes send them: one field per ticked box).
async fn pick(b: &Browser, poll: i64, choices: &[&str]) -> crate::helpers::Page {
    let csrf = b.get(&format!("/polls/{poll}/")).await.csrf().unwrap();
    let mut fields: Vec<(&str, &str)> = choices.iter().map(|c| ("choice", *c)).collect();
    fields.push(("csrf_token", &csrf));
    b.post_raw(&format!("/polls/{poll}/vote/"), &fields).await
}

/// A user's rows on a poll as (slot, choice), in slot order.
async fn rows_of(app: &TestApp, user: &str, poll: i64) -> Vec<(i64, i64)> {
    let n = app
        .scalar(&format!(
            "SELECT COUNT(*) FROM votes v JOIN users u ON u.id = v.user_id \
             WHERE u.username = '{user}' AND v.question_id = {poll}"
        ))
        .await;
    let mut rows = Vec::new();
    for slot in 0..n {
        let choice = app
            .scalar(&format!(
                "SELECT v.choice_id FROM votes v JOIN users u ON u.id = v.user_id \
                 WHERE u.username = '{user}' AND v.question_id = {poll} AND v.slot = {slot}"
            ))
            .await;
        rows.push((slot, choice));
    }
    rows
}

/// Posts a form as a page gave it (`Page::form`): the admin's confirmation of a deletion.
async fn post_form(b: &Browser, action: &str, form: &[(String, String)]) -> crate::helpers::Page {
    let fields: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    b.post_raw(action, &fields).await
}

/// The kept counts (and kept voters) equal the vote rows: `pollstr recount` finds nothing.
async fn counts_match_rows(app: &TestApp) {
    assert_eq!(
        pollstr::polls::counts::recount(&app.db).await.unwrap(),
        Vec::new()
    );
}

async fn a_selection_is_voted_and_replaced_whole(backend: Backend) {
    let app = app(backend).await;
    app.execute("UPDATE questions SET max_choices = 3 WHERE id = 1")
        .await;
    let v = voters(&app, 2).await;
    let page = v[0].get("/polls/1/").await;
    assert!(page.body.contains(r#"type="checkbox""#), "{}", page.body);
    assert!(!page.body.contains(r#"type="radio""#));
    assert!(page.has("Choose up to 3"));
    // A poll of one answer keeps its radio buttons.
    let other = v[0].get("/polls/2/").await;
    assert!(other.body.contains(r#"type="radio""#) && !other.body.contains("checkbox"));

    let sent = pick(&v[0], 1, &["3", "1"]).await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.text());
    assert_eq!(rows_of(&app, "picker0", 1).await, vec![(0, 1), (1, 3)]);
    // The page ticks the whole selection.
    let page = v[0].get("/polls/1/").await;
    let form = page.form("/polls/1/vote/").unwrap();
    let ticked: Vec<&str> = form
        .iter()
        .filter(|(k, _)| k == "choice")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(ticked, ["1", "3"]);
    // A new vote replaces it whole: smaller, then larger.
    assert_eq!(pick(&v[0], 1, &["2"]).await.status, StatusCode::SEE_OTHER);
    assert_eq!(rows_of(&app, "picker0", 1).await, vec![(0, 2)]);
    assert_eq!(
        pick(&v[0], 1, &["4", "2", "1"]).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        rows_of(&app, "picker0", 1).await,
        vec![(0, 1), (1, 2), (2, 4)]
    );
    assert_eq!(pick(&v[1], 1, &["1"]).await.status, StatusCode::SEE_OTHER);
    counts_match_rows(&app).await;

    // The results: the number of voters, each choice's count, shares of the voters.
    let results = v[0].get("/polls/1/results/").await;
    assert_eq!(results.status, StatusCode::OK);
    assert!(
        results.has("2 voters chose up to 3 each: 4 votes in all"),
        "{}",
        results.text()
    );
    assert!(results.has("2 votes · 100%"), "{}", results.text());
    assert!(results.has("1 vote · 50%"));
    assert_eq!(results.body.matches("(your vote)").count(), 3);
    assert_eq!(
        pollstr::polls::store::poll_voters(&app.db, 1)
            .await
            .unwrap(),
        2
    );
}

async fn bad_selections_are_refused_with_nothing_written(backend: Backend) {
    let app = app(backend).await;
    app.execute("UPDATE questions SET max_choices = 2 WHERE id = 1")
        .await;
    let v = voters(&app, 1).await.remove(0);
    assert_eq!(pick(&v, 1, &["1"]).await.status, StatusCode::SEE_OTHER);
    let before = app.scalar("SELECT COUNT(*) FROM votes").await;
    for (choices, says) in [
        (&["1", "2", "3"][..], "Choose at most 2 choices."),
        (&["2", "2"][..], "The same choice was sent twice."),
        (&["2", " 2"][..], "The same choice was sent twice."),
        (&["2", "5"][..], "not one of this poll's"),
        (&["9999"][..], "not one of this poll's"),
        (&["2", "x"][..], "not one of this poll's"),
        (&[][..], "You didn't select a choice."),
    ] {
        let refused = pick(&v, 1, choices).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{choices:?}");
        assert!(refused.has(says), "{choices:?}: {}", refused.text());
        assert!(refused.form("/polls/1/vote/").is_some());
        assert_eq!(
            rows_of(&app, "picker0", 1).await,
            vec![(0, 1)],
            "{choices:?}"
        );
        assert_eq!(app.scalar("SELECT COUNT(*) FROM votes").await, before);
    }
    // A poll of one answer takes one choice.
    let refused = pick(&v, 2, &["5", "6"]).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(refused.has("This poll takes one choice."));
    assert_eq!(app.scalar("SELECT COUNT(*) FROM votes").await, before);
    // A closed poll: 409, as a vote of one answer.
    app.execute("UPDATE questions SET closed_at = 1 WHERE id = 1")
        .await;
    let refused = pick(&v, 1, &["2"]).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text());
    assert_eq!(rows_of(&app, "picker0", 1).await, vec![(0, 1)]);
    counts_match_rows(&app).await;
}

/// Selection `k` of voter `i`: one to three of poll 1's choices, varying with both.
fn selection(i: usize, k: usize) -> Vec<String> {
    let n = 1 + (i + k) % 3;
    (0..n)
        .map(|j| (1 + (i + k + j * 2) % 4).to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

async fn a_burst_of_changing_selections_keeps_counts_equal_to_the_rows(backend: Backend) {
    let app = app(backend).await;
    app.execute("UPDATE questions SET max_choices = 3 WHERE id = 1")
        .await;
    let voters = voters(&app, 12).await;
    let mut tasks = Vec::new();
    for (i, b) in voters.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            // Four changes sent at once (the writer gets one voter's votes in one batch),
            // interleaved with the others' votes on both polls...
            let burst = b
                .burst("/polls/1/", "/polls/1/vote/", 4, |k| {
                    vec![("choice", selection(i, k)[0].clone())]
                })
                .await;
            for p in &burst {
                assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.text());
            }
            for k in 4..8 {
                let chosen = selection(i, k);
                let refs: Vec<&str> = chosen.iter().map(String::as_str).collect();
                let sent = pick(&b, 1, &refs).await;
                assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.text());
                let one = (5 + (i + k) % 4).to_string();
                assert_eq!(pick(&b, 2, &[&one]).await.status, StatusCode::SEE_OTHER);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Each voter's rows are their last selection, slots 0.. in order; the kept counts and
    // voters equal the rows.
    for i in 0..12 {
        let want: Vec<(i64, i64)> = selection(i, 7)
            .iter()
            .enumerate()
            .map(|(s, c)| (s as i64, c.parse().unwrap()))
            .collect();
        assert_eq!(rows_of(&app, &format!("picker{i}"), 1).await, want);
        assert_eq!(rows_of(&app, &format!("picker{i}"), 2).await.len(), 1);
    }
    counts_match_rows(&app).await;
    assert_eq!(
        pollstr::polls::store::poll_voters(&app.db, 1)
            .await
            .unwrap(),
        12
    );
    assert_eq!(
        pollstr::polls::store::poll_voters(&app.db, 2)
            .await
            .unwrap(),
        12
    );
    let rows = app
        .scalar("SELECT COUNT(*) FROM votes WHERE question_id = 1")
        .await;
    let kept = app
        .scalar(
            "SELECT CAST(SUM(n.votes) AS BIGINT) FROM choice_counts n \
             JOIN choices c ON c.id = n.choice_id WHERE c.question_id = 1",
        )
        .await;
    assert_eq!(kept, rows);
}

async fn vote_for_receipt(b: &Browser, poll: i64, choices: &[&str]) -> String {
    let sent = pick(b, poll, choices).await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.text());
    let (_, page) = b.follow(sent).await;
    let at = page
        .body
        .find("Your receipt: ")
        .expect("a receipt is shown")
        + "Your receipt: ".len();
    page.body[at..at + 39].to_string()
}

fn hash(code: &str) -> String {
    pollstr::polls::receipt::hash_of(code).unwrap()
}

async fn receipts_and_the_audit_file_of_a_poll_of_several_answers(backend: Backend) {
    let app = app(backend).await;
    app.execute("UPDATE questions SET max_choices = 4 WHERE id = 1")
        .await;
    let staff = app.staff_browser().await;
    let v = voters(&app, 3).await;
    let old = vote_for_receipt(&v[0], 1, &["1", "2"]).await;
    // One receipt per selection: a changed selection gets a new one, on each of its rows.
    let first = vote_for_receipt(&v[0], 1, &["1", "3", "4"]).await;
    assert_ne!(old, first);
    assert_eq!(
        app.scalar(&format!(
            "SELECT COUNT(*) FROM votes WHERE receipt_hash = '{}'",
            hash(&first)
        ))
        .await,
        3
    );
    assert_eq!(
        app.scalar(&format!(
            "SELECT COUNT(*) FROM votes WHERE receipt_hash = '{}'",
            hash(&old)
        ))
        .await,
        0
    );
    let second = vote_for_receipt(&v[1], 1, &["3"]).await;
    let third = vote_for_receipt(&v[2], 1, &["2", "3"]).await;
    let closed = staff
        .submit("/admin/polls/1/", "/admin/polls/1/close/", &[])
        .await;
    assert_eq!(closed.status, StatusCode::SEE_OTHER);

    // The audit file: a line per chosen choice, each with its selection's receipt hash.
    let audit = v[0].get("/polls/1/audit.csv").await;
    assert_eq!(audit.status, StatusCode::OK);
    let mut want: Vec<String> = [
        (&first, "A beagle"),
        (&first, "A cat"),
        (&first, "I can't choose!"),
        (&second, "A cat"),
        (&third, "A golden retriever"),
        (&third, "A cat"),
    ]
    .iter()
    .map(|(r, c)| format!("{},{c}\n", hash(r)))
    .collect();
    want.sort();
    assert_eq!(
        audit.body,
        format!("receipt_sha256,choice\n{}", want.concat())
    );
    assert!(!audit.body.contains(&hash(&old)));
    let digest = pollstr::polls::receipt::digest(&audit.body);
    let results = v[0].get("/polls/1/results/").await;
    assert!(results.has(&digest), "{}", results.text());
    assert!(
        results.has("6 votes from 3 people who each proved a phone number"),
        "{}",
        results.text()
    );
    // verify-poll: everything matches, the receipt is found with its three choices.
    let verdict = pollstr::polls::seal::verify(&app.db, 1, Some(&hash(&first)))
        .await
        .unwrap()
        .unwrap();
    let said = verdict.lines.join("\n");
    assert!(verdict.ok, "{said}");
    assert!(
        said.contains("for A beagle and A cat and I can't choose!"),
        "{said}"
    );
    // An edit to one chosen choice of a selection is found, naming the vote.
    app.execute(&format!(
        "UPDATE votes SET choice_id = 2 WHERE receipt_hash = '{}' AND slot = 1",
        hash(&first)
    ))
    .await;
    let verdict = pollstr::polls::seal::verify(&app.db, 1, None)
        .await
        .unwrap()
        .unwrap();
    let said = verdict.lines.join("\n");
    assert!(!verdict.ok);
    assert!(said.contains(&format!("vote {}", hash(&first))), "{said}");
}

async fn the_csv_export_gives_each_choices_share_of_the_voters(backend: Backend) {
    let app = app(backend).await;
    app.execute("UPDATE questions SET max_choices = 2 WHERE id = 1")
        .await;
    let v = voters(&app, 3).await;
    for (b, choices) in v.iter().zip([&["1", "2"][..], &["1"], &["1", "3"]]) {
        assert_eq!(pick(b, 1, choices).await.status, StatusCode::SEE_OTHER);
    }
    let csv = v[0].get("/polls/1/results.csv").await;
    assert_eq!(csv.status, StatusCode::OK);
    assert_eq!(
        csv.body,
        "choice,votes,share\r\nA beagle,3,100.0\r\nA golden retriever,1,33.3\r\n\
         A cat,1,33.3\r\nI can't choose!,0,0.0\r\n"
    );
    assert_eq!(
        pollstr::polls::export::export(&app.db, 1)
            .await
            .unwrap()
            .unwrap(),
        csv.body
    );
    // A poll of one answer: shares of all votes, as before.
    assert_eq!(pick(&v[0], 2, &["5"]).await.status, StatusCode::SEE_OTHER);
    assert_eq!(pick(&v[1], 2, &["6"]).await.status, StatusCode::SEE_OTHER);
    assert!(v[0]
        .get("/polls/2/results.csv")
        .await
        .body
        .starts_with("choice,votes,share\r\nI did,1,50.0\r\nYou did,1,50.0\r\n"));
}

async fn the_admin_sets_how_many_choices_a_voter_may_pick(backend: Backend) {
    let app = app(backend).await;
    let staff = app.staff_browser().await;
    let page = "/admin/polls/1/";
    let form = staff.get(page).await;
    assert!(form.body.contains(r#"name="max_choices""#));
    for bad in ["5", "0", "-1", "two"] {
        let sent = staff.submit(page, page, &[("max_choices", bad)]).await;
        assert_eq!(sent.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        assert!(
            sent.has("A voter can pick at most as many choices as the poll has (4)")
                || sent.has("Enter a whole number of choices a voter may pick"),
            "{bad}: {}",
            sent.text()
        );
    }
    assert_eq!(
        app.scalar("SELECT max_choices FROM questions WHERE id = 1")
            .await,
        1
    );
    let saved = staff.submit(page, page, &[("max_choices", "3")]).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.text());
    assert_eq!(
        app.scalar("SELECT max_choices FROM questions WHERE id = 1")
            .await,
        3
    );
    let v = voters(&app, 1).await.remove(0);
    assert!(v.get("/polls/1/").await.body.contains(r#"type="checkbox""#));
    assert_eq!(
        pick(&v, 1, &["1", "2", "3"]).await.status,
        StatusCode::SEE_OTHER
    );
    // Fewer than a voter chose: refused, nothing saved.
    let sent = staff.submit(page, page, &[("max_choices", "2")]).await;
    assert_eq!(sent.status, StatusCode::CONFLICT);
    assert!(sent.has("Some voters chose 3 choices"), "{}", sent.text());
    assert_eq!(
        app.scalar("SELECT max_choices FROM questions WHERE id = 1")
            .await,
        3
    );
    // Once that voter picks one, the poll may take one again (radio buttons).
    assert_eq!(pick(&v, 1, &["4"]).await.status, StatusCode::SEE_OTHER);
    let saved = staff.submit(page, page, &[("max_choices", "1")]).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.text());
    assert!(v.get("/polls/1/").await.body.contains(r#"type="radio""#));
    assert_eq!(pick(&v, 1, &["2"]).await.status, StatusCode::SEE_OTHER);
    assert_eq!(rows_of(&app, "picker0", 1).await, vec![(0, 2)]);
    counts_match_rows(&app).await;
}

async fn max_choices_and_selections_round_trip_through_fixtures(backend: Backend) {
    let app = app(backend).await;
    app.execute("UPDATE questions SET max_choices = 3 WHERE id = 1")
        .await;
    let v = voters(&app, 2).await;
    assert_eq!(
        pick(&v[0], 1, &["4", "2"]).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(pick(&v[1], 1, &["3"]).await.status, StatusCode::SEE_OTHER);
    let dump = pollstr::fixtures::dump(&app.db).await.unwrap();
    let entries: serde_json::Value = serde_json::from_str(&dump).unwrap();
    let settings: Vec<_> = entries
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["model"] == "polls.pollsettings")
        .collect();
    assert_eq!(settings.len(), 1, "{settings:?}");
    assert_eq!(settings[0]["pk"], 1);
    assert_eq!(settings[0]["fields"]["max_choices"], 3);
    // Django's models keep Django's fields.
    for e in entries.as_array().unwrap() {
        if e["model"] == "polls.question" {
            assert!(e["fields"].get("max_choices").is_none());
        }
    }
    let other = spawn_app(backend).await;
    other.load(&dump).await;
    assert_eq!(pollstr::fixtures::dump(&other.db).await.unwrap(), dump);
    assert_eq!(
        other
            .scalar("SELECT max_choices FROM questions WHERE id = 1")
            .await,
        3
    );
    assert_eq!(rows_of(&other, "picker0", 1).await, vec![(0, 2), (1, 4)]);
    counts_match_rows(&other).await;
    // Loaded again over itself: nothing changes.
    other.load(&dump).await;
    assert_eq!(pollstr::fixtures::dump(&other.db).await.unwrap(), dump);
    // A max_choices below 1 or above the poll's choices: refused, naming the entry.
    for (json, needle) in [
        (
            r#"[{"model":"polls.pollsettings","pk":1,"fields":{"max_choices":0}}]"#,
            "must be 1 or more",
        ),
        (
            r#"[{"model":"polls.pollsettings","pk":1,"fields":{"max_choices":9}}]"#,
            "max_choices is 9, but question 1 has 4 choice(s)",
        ),
    ] {
        let e = pollstr::fixtures::load(&other.db, &[("f.json".into(), json.into())])
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains(needle) && e.contains("entry 1"), "{e}");
    }
}

/// Another instance (here: a database edit, past this server's kept settings of the poll)
/// changes how many choices the poll takes: the next vote is written as the poll is now.
async fn a_vote_follows_a_change_of_max_choices_made_elsewhere(backend: Backend) {
    let app = app(backend).await;
    let v = voters(&app, 1).await.remove(0);
    // Kept: the poll takes one choice.
    assert_eq!(pick(&v, 1, &["1"]).await.status, StatusCode::SEE_OTHER);
    app.execute("UPDATE questions SET max_choices = 3 WHERE id = 1")
        .await;
    let sent = pick(&v, 1, &["2", "4"]).await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.text());
    assert_eq!(rows_of(&app, "picker0", 1).await, vec![(0, 2), (1, 4)]);
    // One choice on what is kept as a poll of several, now of one: written as one answer...
    app.execute("UPDATE questions SET max_choices = 1 WHERE id = 1")
        .await;
    assert_eq!(pick(&v, 1, &["3"]).await.status, StatusCode::SEE_OTHER);
    assert_eq!(rows_of(&app, "picker0", 1).await, vec![(0, 3)]);
    // ...and never only the row at slot 0 of a larger selection.
    app.execute("UPDATE questions SET max_choices = 3 WHERE id = 1")
        .await;
    assert_eq!(
        pick(&v, 1, &["1", "2", "4"]).await.status,
        StatusCode::SEE_OTHER
    );
    app.execute("UPDATE questions SET max_choices = 1 WHERE id = 1")
        .await;
    let refused = pick(&v, 1, &["1", "2"]).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(
        refused.has("This poll takes one choice."),
        "{}",
        refused.text()
    );
    assert_eq!(
        rows_of(&app, "picker0", 1).await,
        vec![(0, 1), (1, 2), (2, 4)]
    );
    counts_match_rows(&app).await;
}

/// Staff delete a choice that some voters picked first (slot 0, what counts a voter): each of
/// them who picked others stays a voter, with their slots still 0 … k−1; one who picked only it
/// is a voter no more; the kept counts equal the rows. Then a choice in the middle of a
/// selection: no hole is left in its slots.
async fn a_deleted_choice_leaves_every_voter_with_another_choice_counted(backend: Backend) {
    let app = app(backend).await;
    app.execute("UPDATE questions SET max_choices = 3 WHERE id = 1")
        .await;
    let v = voters(&app, 4).await;
    for (b, picked) in v.iter().zip([
        &["1", "3"][..],
        &["1"][..],
        &["2", "3"][..],
        &["1", "2", "4"][..],
    ]) {
        assert_eq!(pick(b, 1, picked).await.status, StatusCode::SEE_OTHER);
    }
    let voters_now = || async {
        pollstr::polls::store::poll_voters(&app.db, 1)
            .await
            .unwrap()
    };
    assert_eq!(voters_now().await, 4);

    // Choice 1 (choice-0 on the form, three votes) deleted, confirmed as the admin asks.
    let staff = app.staff_browser().await;
    let page = "/admin/polls/1/";
    let asked = staff.submit(page, page, &[("choice-0-delete", "on")]).await;
    assert_eq!(asked.status, StatusCode::CONFLICT, "{}", asked.text());
    assert!(asked.has("has 3 votes"), "{}", asked.text());
    let confirm = asked.form(page).unwrap();
    let saved = post_form(&staff, page, &confirm).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.text());
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM choices WHERE id = 1")
            .await,
        0
    );

    assert_eq!(rows_of(&app, "picker0", 1).await, vec![(0, 3)]);
    assert_eq!(rows_of(&app, "picker1", 1).await, vec![]);
    assert_eq!(rows_of(&app, "picker2", 1).await, vec![(0, 2), (1, 3)]);
    assert_eq!(rows_of(&app, "picker3", 1).await, vec![(0, 4), (1, 2)]);
    assert_eq!(voters_now().await, 3);
    counts_match_rows(&app).await;
    let results = v[0].get("/polls/1/results/").await;
    assert!(
        results.has("3 voters chose up to 3 each: 5 votes in all"),
        "{}",
        results.text()
    );
    // A moved selection is replaced whole as any other.
    assert_eq!(pick(&v[3], 1, &["2"]).await.status, StatusCode::SEE_OTHER);
    assert_eq!(rows_of(&app, "picker3", 1).await, vec![(0, 2)]);
    assert_eq!(voters_now().await, 3);
    counts_match_rows(&app).await;

    // A choice in the middle of a selection: the last one takes its slot, no hole is left, so
    // the poll may take as few choices as its largest selection now has.
    assert_eq!(
        pick(&v[3], 1, &["2", "3", "4"]).await.status,
        StatusCode::SEE_OTHER
    );
    let form = staff.get(page).await.form(page).unwrap();
    let index = form
        .iter()
        .find_map(|(k, v)| (v == "3").then(|| k.strip_suffix("-id")).flatten())
        .expect("choice 3 on the form")
        .to_string();
    // (With a new choice, so that the poll keeps three for its `max_choices` of 3.)
    let asked = staff
        .submit(
            page,
            page,
            &[
                (&format!("{index}-delete"), "on"),
                ("choice-3-text", "A poodle"),
            ],
        )
        .await;
    assert!(asked.has("has 3 votes"), "{}", asked.text());
    let confirm = asked.form(page).unwrap();
    assert_eq!(
        post_form(&staff, page, &confirm).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(rows_of(&app, "picker0", 1).await, vec![]);
    assert_eq!(rows_of(&app, "picker2", 1).await, vec![(0, 2)]);
    assert_eq!(rows_of(&app, "picker3", 1).await, vec![(0, 2), (1, 4)]);
    assert_eq!(voters_now().await, 2);
    counts_match_rows(&app).await;
    let lowered = staff.submit(page, page, &[("max_choices", "2")]).await;
    assert_eq!(lowered.status, StatusCode::SEE_OTHER, "{}", lowered.text());
}

/// Staff delete choice 1 while every voter who chose (1, 2, 3) changes to (1, 2), all at once:
/// each vote is ordered before the deletion or after it. Before: the vote is counted and the
/// deletion leaves (2). After: choice 1 is gone, the vote is refused, and the deletion had left
/// (3, 2) (the last choice in the deleted one's slot). Never a counted vote for (1, 2) that ends
/// as (3, 2); the kept counts equal the rows.
async fn a_choice_deleted_during_a_burst_of_changed_selections_leaves_each_as_voted(
    backend: Backend,
) {
    let app = app(backend).await;
    app.execute("UPDATE questions SET max_choices = 3 WHERE id = 1")
        .await;
    let v = voters(&app, 12).await;
    let mut csrfs = Vec::new();
    for b in &v {
        assert_eq!(
            pick(b, 1, &["1", "2", "3"]).await.status,
            StatusCode::SEE_OTHER
        );
        csrfs.push(b.get("/polls/1/").await.csrf().unwrap());
    }
    let staff = app.staff_browser().await;
    let page = "/admin/polls/1/";
    // Choice 1 is choice-0 on the form; a new choice keeps three on the poll for its 3.
    let asked = staff
        .submit(
            page,
            page,
            &[("choice-0-delete", "on"), ("choice-4-text", "A poodle")],
        )
        .await;
    assert_eq!(asked.status, StatusCode::CONFLICT, "{}", asked.text());
    let mut confirm = asked.form(page).unwrap();

    let votes: Vec<_> = v
        .iter()
        .cloned()
        .zip(csrfs)
        .enumerate()
        .map(|(i, (b, csrf))| {
            tokio::spawn(async move {
                // Spread over the deletion's time, so that some come before it and some after.
                tokio::time::sleep(std::time::Duration::from_millis(2 * i as u64)).await;
                b.post_raw(
                    "/polls/1/vote/",
                    &[("choice", "1"), ("choice", "2"), ("csrf_token", &csrf)],
                )
                .await
                .status
            })
        })
        .collect();
    // The deletion, confirmed again while votes change its count of votes.
    loop {
        let sent = post_form(&staff, page, &confirm).await;
        if sent.status == StatusCode::SEE_OTHER {
            break;
        }
        assert_eq!(sent.status, StatusCode::CONFLICT, "{}", sent.text());
        confirm = sent.form(page).unwrap();
    }
    let mut counted = 0;
    for (i, vote) in votes.into_iter().enumerate() {
        let status = vote.await.unwrap();
        let rows = rows_of(&app, &format!("picker{i}"), 1).await;
        if status == StatusCode::SEE_OTHER {
            counted += 1;
            assert_eq!(rows, vec![(0, 2)], "picker{i}: counted (1, 2)");
        } else {
            assert_eq!(rows, vec![(0, 3), (1, 2)], "picker{i}: refused ({status})");
        }
    }
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM choices WHERE id = 1")
            .await,
        0
    );
    assert_eq!(
        pollstr::polls::store::poll_voters(&app.db, 1)
            .await
            .unwrap(),
        12
    );
    counts_match_rows(&app).await;
    eprintln!("{counted} of 12 changed selections were counted before the deletion");
}
