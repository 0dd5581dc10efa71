//! Django dumpdata import and export.

use crate::both_backends;
use crate::helpers::{spawn_app, Backend, SEED};

both_backends!(
    seed_loads_idempotently,
    bad_files_change_nothing_and_name_the_entry,
    dump_then_load_round_trips,
);

async fn seed_loads_idempotently(backend: Backend) {
    let app = spawn_app(backend).await;
    app.load(SEED).await;
    app.load(SEED).await;
    assert_eq!(app.scalar("SELECT COUNT(*) FROM questions").await, 3);
    assert_eq!(app.scalar("SELECT COUNT(*) FROM choices").await, 12);
    assert_eq!(app.scalar("SELECT COUNT(*) FROM users").await, 1);
    // New rows after an import get fresh ids (sequences moved past the imported ones).
    let id = pollstr::accounts::users::create(&app.db, "second", "x")
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
