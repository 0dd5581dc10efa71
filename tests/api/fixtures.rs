//! Django dumpdata import and export.

use crate::both_backends;
use crate::helpers::{spawn_app, Backend, SEED};
use crate::passkeys::{enrol, options, post_on, SoftKey};
use reqwest::StatusCode;

both_backends!(
    seed_loads_idempotently,
    bad_files_change_nothing_and_name_the_entry,
    dump_then_load_round_trips,
    a_voted_choice_cannot_move_to_another_poll,
    imported_counts_are_bounded,
    a_load_waits_for_a_write_in_progress,
    poll_settings_round_trip,
    a_passkey_signs_in_after_dump_and_load,
    a_bad_passkey_entry_is_named_and_nothing_written,
);

async fn seed_loads_idempotently(backend: Backend) {
    let app = spawn_app(backend).await;
    app.load(SEED).await;
    app.load(SEED).await;
    assert_eq!(app.scalar("SELECT COUNT(*) FROM questions").await, 3);
    assert_eq!(app.scalar("SELECT COUNT(*) FROM choices").await, 12);
    assert_eq!(app.scalar("SELECT COUNT(*) FROM users").await, 1);
    // New rows after an import get fresh ids (sequences moved past the imported ones).
    let id = pollstr::users::create(&app.db, "second", "x")
        .await
        .unwrap();
    assert!(id > 1);
}

async fn bad_files_change_nothing_and_name_the_entry(backend: Backend) {
    let app = spawn_app(backend).await;
    let cases = [
        (
            r#"[{"model":"polls.question","pk":1,"fields":{"question_text":"Q","pub_date":"2016-07-25T12:54:24Z"}},
             {"model":"polls.choice","pk":1,"fields":{"question":42,"choice_text":"A","votes":0}}]"#,
            "entry 2",
            "question 42 does not exist",
        ),
        (
            r#"[{"model":"polls.question","pk":1,"fields":{"question_text":"Q","pub_date":"2016-07-25T12:54:24Z"}},
             {"model":"polls.answer","pk":1,"fields":{}}]"#,
            "entry 2",
            "unknown model",
        ),
        (
            r#"[{"model":"polls.question","pk":1,"fields":{"question_text":"Q","pub_date":"2016-07-25T12:54:24Z"}},
             {"model":"auth.user","pk":1,"fields":{"username":"x"}}]"#,
            "entry 2",
            "\"password\" is missing",
        ),
        (
            r#"[{"model":"polls.question","pk":1,"fields":{"question_text":"Q","pub_date":"2016-07-25"#,
            "",
            "truncated",
        ),
        (r#"{"model":"polls.question"}"#, "", "must be a list"),
        (
            r#"[{"model":"polls.question","pk":1,"fields":{"question_text":"Q","pub_date":"soon"}}]"#,
            "entry 1",
            "not a date",
        ),
    ];
    for (json, entry, msg) in cases {
        let err = pollstr::fixtures::load(&app.db, &[("bad.json".into(), json.into())])
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(entry) && err.contains(msg), "{err}");
        assert!(err.starts_with("bad.json"), "{err}");
    }
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM questions").await,
        0,
        "all or nothing"
    );
}

async fn dump_then_load_round_trips(backend: Backend) {
    let app = spawn_app(backend).await;
    app.load(SEED).await;
    let b = app.verified_browser().await;
    b.submit("/polls/2/", "/polls/2/vote/", &[("choice", "8")])
        .await;
    let dump = pollstr::fixtures::dump(&app.db).await.unwrap();
    assert!(
        dump.contains("\n    {\n        \"model\": "),
        "4-space Django layout"
    );
    let other = spawn_app(backend).await;
    other.load(&dump).await;
    assert_eq!(pollstr::fixtures::dump(&other.db).await.unwrap(), dump);
    assert_eq!(
        other
            .scalar("SELECT COUNT(*) FROM votes WHERE choice_id = 8")
            .await,
        1
    );
    assert_eq!(other.scalar("SELECT COUNT(*) FROM phone_numbers").await, 1);
    // The same user logs in on the copy and sees the same results.
    let b2 = other.browser();
    b2.login("test", "test1234").await;
    assert!(b2.get("/polls/").await.has("Signed in as test"));
}

async fn a_voted_choice_cannot_move_to_another_poll(backend: Backend) {
    let app = spawn_app(backend).await;
    app.load(SEED).await;
    let b = app.verified_browser().await;
    b.submit("/polls/2/", "/polls/2/vote/", &[("choice", "8")])
        .await;
    // Choice 8 belongs to question 2 and has a vote: a file that moves it to question 1.
    let moving = r#"[{"model":"polls.question","pk":1,"fields":{"question_text":"Q","pub_date":"2016-07-25T12:54:24Z"}},
        {"model":"polls.choice","pk":8,"fields":{"question":1,"choice_text":"moved","votes":0}}]"#;
    let err = pollstr::fixtures::load(&app.db, &[("move.json".into(), moving.into())])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("move.json")
            && err.contains("entry 2")
            && err.contains("choice 8 has 1 vote(s) on question 2: it cannot move to question 1"),
        "{err}"
    );
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM choices WHERE id = 8 AND question_id = 2 AND choice_text <> 'moved'")
            .await,
        1,
        "nothing changed"
    );
    // Whatever writes, the database refuses too.
    let direct = match &app.db {
        pollstr::db::Db::Sqlite(p) => {
            sqlx::query("UPDATE choices SET question_id = 1 WHERE id = 8")
                .execute(p)
                .await
                .map(|_| ())
        }
        pollstr::db::Db::Postgres(p) => {
            sqlx::query("UPDATE choices SET question_id = 1 WHERE id = 8")
                .execute(p)
                .await
                .map(|_| ())
        }
    };
    assert!(direct
        .unwrap_err()
        .to_string()
        .contains("cannot move to another poll"));
    // A choice without votes may still move; the dump still loads into a fresh database.
    let free = r#"[{"model":"polls.choice","pk":9,"fields":{"question":1,"choice_text":"free","votes":0}}]"#;
    app.load(free).await;
    let dump = pollstr::fixtures::dump(&app.db).await.unwrap();
    let other = spawn_app(backend).await;
    other.load(&dump).await;
    assert_eq!(pollstr::fixtures::dump(&other.db).await.unwrap(), dump);
}

async fn imported_counts_are_bounded(backend: Backend) {
    let app = spawn_app(backend).await;
    app.load(SEED).await;
    for votes in [
        "1000000001",
        "9223372036854775807",
        "1e30",
        "99999999999999999999999",
    ] {
        let file = format!(
            r#"[{{"model":"polls.choice","pk":1,"fields":{{"question":1,"choice_text":"A","votes":{votes}}}}}]"#
        );
        let err = pollstr::fixtures::load(&app.db, &[("big.json".into(), file)])
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("entry 1") && err.contains("\"votes\""),
            "{votes}: {err}"
        );
    }
    // The largest allowed count on every choice of a poll: its pages still work.
    let mut entries = Vec::new();
    for pk in 1..=4 {
        entries.push(format!(
            r#"{{"model":"polls.choice","pk":{pk},"fields":{{"question":1,"choice_text":"C{pk}","votes":{}}}}}"#,
            pollstr::fixtures::MAX_IMPORTED_VOTES
        ));
    }
    app.load(&format!("[{}]", entries.join(","))).await;
    app.polls.clear();
    let b = app.verified_browser().await;
    for path in ["/polls/1/", "/polls/1/results/", "/polls/"] {
        let page = b.get(path).await;
        assert_eq!(
            page.status,
            reqwest::StatusCode::OK,
            "{path}: {}",
            page.text()
        );
    }
    assert!(b.get("/polls/1/results/").await.has("1000000000 votes"));
    let dump = pollstr::fixtures::dump(&app.db).await.unwrap();
    assert!(dump.contains("\"votes\": 1000000000"));
}

/// A load while another connection is writing (the server's housekeeping, a vote batch): it
/// waits for that write and then loads. On SQLite a transaction that read before it wrote would
/// instead fail ("database is locked") once the other write committed: the load takes the write
/// lock first (`Db::begin_write`).
async fn a_load_waits_for_a_write_in_progress(backend: Backend) {
    let app = spawn_app(backend).await;
    app.load(SEED).await;
    let other = pollstr::with_db!(&app.db, p => {
        let mut tx = p.begin_with(app.db.begin_write()).await.unwrap();
        sqlx::query("UPDATE questions SET question_text = 'Edited elsewhere?' WHERE id = 3")
            .execute(&mut *tx)
            .await
            .unwrap();
        // The load starts (and, were it deferred, reads) while this write is in progress.
        let db = app.db.clone();
        let load = tokio::spawn(async move {
            let user = r#"[{"model":"auth.user","pk":7,"fields":{"username":"later","password":"pbkdf2_sha256$1$x$y"}}]"#;
            pollstr::fixtures::load(&db, &[("users.json".into(), user.into())]).await
        });
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        tx.commit().await.unwrap();
        load
    });
    other.await.unwrap().expect("the load waits, then loads");
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM users WHERE username = 'later'")
            .await,
        1
    );
}

/// A poll's closing, recorded close and results visibility (`polls.pollsettings`, pk = the
/// question's) go out with `dumpdata` and come back with `loaddata`; the tutorial's
/// `polls.question` and `polls.choice` entries keep Django's fields only.
async fn poll_settings_round_trip(backend: Backend) {
    let app = spawn_app(backend).await;
    app.load(SEED).await;
    app.execute(
        "UPDATE questions SET closes_at = 4102444800, results_visibility = 'closed' WHERE id = 1",
    )
    .await;
    app.execute("UPDATE questions SET closes_at = 1500000000, closed_at = 1500000001 WHERE id = 2")
        .await;
    let dump = pollstr::fixtures::dump(&app.db).await.unwrap();
    let entries: serde_json::Value = serde_json::from_str(&dump).unwrap();
    for e in entries.as_array().unwrap() {
        if e["model"] == "polls.question" {
            let mut fields: Vec<&str> = e["fields"]
                .as_object()
                .unwrap()
                .keys()
                .map(|k| k.as_str())
                .collect();
            fields.sort_unstable();
            assert_eq!(
                fields,
                ["pub_date", "question_text"],
                "Django's fields only"
            );
        }
    }
    let settings: Vec<_> = entries
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["model"] == "polls.pollsettings")
        .collect();
    assert_eq!(
        settings.len(),
        2,
        "only the polls whose settings are not the defaults"
    );
    assert_eq!(settings[0]["pk"], 1);
    assert_eq!(settings[0]["fields"]["closes_at"], "2100-01-01T00:00:00Z");
    assert_eq!(settings[0]["fields"]["results_visibility"], "closed");
    let other = spawn_app(backend).await;
    other.load(&dump).await;
    assert_eq!(pollstr::fixtures::dump(&other.db).await.unwrap(), dump);
    assert_eq!(
        other
            .scalar("SELECT closed_at FROM questions WHERE id = 2")
            .await,
        1500000001
    );
    // A wrong visibility, or the settings of a poll that does not exist: refused, naming them.
    for (json, needle) in [
        (
            r#"[{"model":"polls.pollsettings","pk":1,"fields":{"results_visibility":"never"}}]"#,
            "must be \"always\", \"voted\" or \"closed\"",
        ),
        (
            r#"[{"model":"polls.pollsettings","pk":77,"fields":{"closes_at":"2100-01-01T00:00:00Z"}}]"#,
            "question 77 does not exist",
        ),
    ] {
        let e = pollstr::fixtures::load(&other.db, &[("f.json".into(), json.into())])
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains(needle) && e.contains("entry 1"), "{e}");
    }
}

/// A passkey enrolled before the dump signs in (as the second factor) on a fresh database the
/// dump was loaded into: the dump carries its public key, counter and user handle.
async fn a_passkey_signs_in_after_dump_and_load(backend: Backend) {
    let app = spawn_app(backend).await;
    app.load(SEED).await;
    let b = app.verified_browser().await;
    let mut key = SoftKey::new(3);
    let added = enrol(&b, &mut key, "Laptop").await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.text());
    let dump = pollstr::fixtures::dump(&app.db).await.unwrap();
    assert!(dump.contains("\"model\": \"pollstr.passkey\""), "{dump}");
    assert!(dump.contains("\"name\": \"Laptop\""), "{dump}");
    let other = spawn_app(backend).await;
    let report = pollstr::fixtures::load(&other.db, &[("dump.json".into(), dump.clone())])
        .await
        .unwrap();
    assert_eq!(report.passkeys, 1);
    assert!(report.summary(1).contains("1 passkey(s)"));
    assert_eq!(pollstr::fixtures::dump(&other.db).await.unwrap(), dump);
    while other.codes.lock().await.try_recv().is_ok() {}
    let b2 = other.browser();
    b2.login("test", "test1234").await;
    let to = b2.get("/2fa/?next=/polls/").await;
    assert_eq!(to.location.as_deref(), Some("/2fa/passkey/?next=/polls/"));
    let page = b2.get("/2fa/passkey/?next=/polls/").await;
    let answer = key.get(&options(&page, "/2fa/passkey/"));
    let done = post_on(&b2, &page, "/2fa/passkey/", &[("credential", &answer)]).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text());
    assert_eq!(b2.get("/account/").await.status, StatusCode::OK);
    assert!(other.no_code_sent(), "no SMS");
    // A new passkey on the copy gets a fresh id (the sequence moved past the loaded one).
    let added = enrol(&b2, &mut SoftKey::new(4), "Phone").await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.text());
    assert_eq!(other.scalar("SELECT COUNT(*) FROM passkeys").await, 2);
}

/// Each malformed passkey entry: the file, the entry and the field are named; nothing written.
async fn a_bad_passkey_entry_is_named_and_nothing_written(backend: Backend) {
    let app = spawn_app(backend).await;
    app.load(SEED).await;
    let b = app.verified_browser().await;
    let added = enrol(&b, &mut SoftKey::new(5), "Laptop").await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.text());
    let dump = pollstr::fixtures::dump(&app.db).await.unwrap();
    let entries: Vec<serde_json::Value> = serde_json::from_str(&dump).unwrap();
    let good = entries
        .iter()
        .find(|e| e["model"] == "pollstr.passkey")
        .unwrap()
        .clone();
    let question = serde_json::json!({"model": "polls.question", "pk": 9,
        "fields": {"question_text": "Written?", "pub_date": "2016-07-25T12:54:24Z"}});
    let with = |field: &str, value: serde_json::Value| {
        let mut e = good.clone();
        if value.is_null() {
            e["fields"].as_object_mut().unwrap().remove(field);
        } else {
            e["fields"][field] = value;
        }
        e
    };
    let mut other_key = good["fields"]["credential"].clone();
    other_key["cred"]["cred_id"] = serde_json::json!("AAAA");
    let cases = [
        (
            with("credential", serde_json::json!("a string")),
            "\"credential\" must be an object",
        ),
        (
            with("credential", serde_json::json!({"cred": 1})),
            "\"credential\" is not a passkey record",
        ),
        (
            with("credential", other_key),
            "\"credential_id\" is not the credential ID inside",
        ),
        (with("name", serde_json::json!("")), "\"name\" is empty"),
        (
            with("user", serde_json::json!("one")),
            "\"user\" must be a whole number",
        ),
        (
            with("created_at", serde_json::Value::Null),
            "\"created_at\" is missing",
        ),
        (
            with("user", serde_json::json!(99)),
            "user 99 does not exist",
        ),
    ];
    for (entry, msg) in cases {
        let file = serde_json::json!([question, entry]).to_string();
        let err = pollstr::fixtures::load(&app.db, &[("keys.json".into(), file)])
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("keys.json: entry 2 (pollstr.passkey pk ") && err.contains(msg),
            "{msg}: {err}"
        );
    }
    // Another passkey (pk) with the same credential ID.
    let mut twin = good.clone();
    twin["pk"] = serde_json::json!(77);
    let file = serde_json::json!([question, twin]).to_string();
    let err = pollstr::fixtures::load(&app.db, &[("keys.json".into(), file)])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("keys.json: entry 2 (pollstr.passkey pk 77)")
            && err.contains("another passkey's"),
        "{err}"
    );
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM questions WHERE id = 9")
            .await,
        0
    );
    assert_eq!(app.scalar("SELECT COUNT(*) FROM passkeys").await, 1);
    // The admin's upload may not give an account a passkey.
    let mut planted = good.clone();
    planted["pk"] = serde_json::json!(78);
    let file = serde_json::json!([planted]).to_string();
    let err = pollstr::fixtures::load_with(
        &app.db,
        &[("keys.json".into(), file)],
        pollstr::fixtures::Accounts::AddOnly,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("pollstr.passkey pk 78") && err.contains("admin only adds"),
        "{err}"
    );
}
