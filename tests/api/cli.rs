//! The `pollstr` command line: every command migrates first; errors are messages, not panics.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn run(dir: &std::path::Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pollstr"))
        .current_dir(dir)
        .env_clear()
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.join("cli.db").display()),
        )
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

#[test]
fn migrate_loaddata_dumpdata_createuser() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert!(run(d, &["migrate"], None).status.success());
    let seed = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/all.json");
    let o = run(d, &["loaddata", seed], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("Installed 16 object(s) from 1 fixture(s)"),
        "{}",
        stderr(&o)
    );
    let o = run(d, &["dumpdata"], None);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("\"What is your favorite kind of dog?\"")
            && out.contains("\"model\": \"auth.user\"")
    );

    let o = run(
        d,
        &["createuser", "alice", "--password-stdin"],
        Some("Xk3!pq9z#Lm\n"),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(
        d,
        &["createuser", "ALICE", "--password-stdin"],
        Some("Xk3!pq9z#Lm\n"),
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("A user with that username already exists."),
        "{}",
        stderr(&o)
    );
    let o = run(d, &["createuser", "bob", "--password-stdin"], Some("123\n"));
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("too short") && stderr(&o).contains("entirely numeric"),
        "{}",
        stderr(&o)
    );
    let o = run(
        d,
        &["createuser", "b o b", "--password-stdin"],
        Some("Xk3!pq9z#Lm\n"),
    );
    assert!(stderr(&o).contains("Enter a valid username"));
}

#[test]
fn errors_are_messages() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bad = d.join("bad.json");
    std::fs::write(
        &bad,
        r#"[{"model":"polls.choice","pk":1,"fields":{"question":9,"choice_text":"x","votes":0}}]"#,
    )
    .unwrap();
    let o = run(d, &["loaddata", bad.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("entry 1 (polls.choice pk 1): question 9 does not exist"),
        "{}",
        stderr(&o)
    );
    let o = run(d, &["loaddata", "missing.json"], None);
    assert!(
        stderr(&o).contains("cannot read missing.json"),
        "{}",
        stderr(&o)
    );
    let o = run(d, &["frobnicate"], None);
    assert!(!o.status.success() && stderr(&o).contains("unrecognized subcommand"));
    let o = Command::new(env!("CARGO_BIN_EXE_pollstr"))
        .current_dir(d)
        .env_clear()
        .env("DATABASE_URL", "mysql://nope")
        .arg("migrate")
        .output()
        .unwrap();
    assert!(
        stderr(&o).contains("DATABASE_URL must start with sqlite: or postgres://"),
        "{}",
        stderr(&o)
    );
    let o = Command::new(env!("CARGO_BIN_EXE_pollstr"))
        .current_dir(d)
        .env_clear()
        .env("SMS_LIMIT_PER_USER", "lots")
        .arg("migrate")
        .output()
        .unwrap();
    assert!(
        stderr(&o).contains("setting SMS_LIMIT_PER_USER"),
        "{}",
        stderr(&o)
    );
}
