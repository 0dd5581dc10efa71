//! The SMTP mailer against a real SMTP server on loopback (`smtp_sink`), over plain TCP,
//! STARTTLS and implicit TLS: the message is read back. A server that refuses, drops the
//! connection or hangs never holds up the one who handed the message over: `Outbox::send`
//! returns at once, each try ends within `SMTP_TIMEOUT`, and a message is tried
//! `MAIL_ATTEMPTS` times, no more.

use std::sync::Arc;
use std::time::Duration;

use pollstr::config::{parse_smtp_url, Config};
use pollstr::mail::smtp::SmtpMailer;
use pollstr::mail::{Mail, Mailer, Outbox};
use tokio::sync::Semaphore;

use crate::smtp_sink::{self, Behaviour, Security};

fn mail() -> Mail {
    Mail {
        to: "Ada <ada@example.com>".into(),
        subject: "Your Pollstr password was changed".into(),
        body: "Hello,\r\nthe body, with a line that starts with a dot:\r\n.hidden\r\n".into(),
    }
}

fn mailer(url: &str, sink: &smtp_sink::Sink, timeout: Duration) -> SmtpMailer {
    let mut settings = parse_smtp_url(url).unwrap();
    settings.extra_root_pem = Some(sink.cert_pem.clone());
    SmtpMailer::new(&settings, "Pollstr <polls@example.com>", timeout).unwrap()
}

async fn sent_and_read_back(security: Security, url: impl Fn(u16) -> String) {
    let sink = smtp_sink::start(security, Behaviour::Accept).await;
    let m = mailer(&url(sink.port), &sink, Duration::from_secs(30));
    m.send(&mail()).await.expect("sent");
    let got = sink.next().await;
    assert!(got.from.starts_with("<polls@example.com>"), "{}", got.from);
    assert_eq!(got.to.len(), 1);
    assert!(got.to[0].starts_with("<ada@example.com>"), "{:?}", got.to);
    assert!(got
        .data
        .contains("Subject: Your Pollstr password was changed"));
    assert!(got.data.contains("Content-Type: text/plain"));
    assert!(got.data.contains("the body"));
    // Dot-stuffed on the wire, as SMTP wants.
    assert!(got.data.contains("\r\n..hidden"), "{}", got.data);
    assert_eq!(got.tls, security != Security::Plain);
    if security != Security::Plain {
        assert_eq!(
            got.auth.as_deref(),
            Some("PLAIN"),
            "credentials only over TLS"
        );
    }
}

#[tokio::test]
async fn plain_smtp_to_a_local_relay() {
    sent_and_read_back(Security::Plain, |p| {
        format!("smtp://127.0.0.1:{p}?tls=none")
    })
    .await;
}

#[tokio::test]
async fn starttls_with_credentials() {
    sent_and_read_back(Security::StartTls, |p| {
        format!("smtp://me:secret@localhost:{p}")
    })
    .await;
}

#[tokio::test]
async fn implicit_tls_with_credentials() {
    sent_and_read_back(Security::Implicit, |p| {
        format!("smtps://me:secret@localhost:{p}")
    })
    .await;
}

#[tokio::test]
async fn starttls_is_required_not_hoped_for() {
    // A server that offers no STARTTLS gets neither the credentials nor the message.
    let sink = smtp_sink::start(Security::Plain, Behaviour::Accept).await;
    let m = mailer(
        &format!("smtp://me:secret@localhost:{}", sink.port),
        &sink,
        Duration::from_secs(30),
    );
    assert!(m.send(&mail()).await.is_err());
    assert!(sink.received.lock().await.try_recv().is_err());
}

/// An outbox on the sink, trying each message twice, each try at most `timeout`.
fn outbox(sink: &smtp_sink::Sink, timeout: Duration) -> Outbox {
    let m = mailer(
        &format!("smtp://127.0.0.1:{}?tls=none", sink.port),
        sink,
        timeout,
    );
    Outbox::new(Some(Arc::new(m)), 2, timeout).with_backoff(Duration::from_millis(10))
}

#[tokio::test]
async fn a_refusing_or_dropping_server_is_tried_a_bounded_number_of_times() {
    for behaviour in [Behaviour::Refuse, Behaviour::Drop] {
        let sink = smtp_sink::start(Security::Plain, behaviour).await;
        let out = outbox(&sink, Duration::from_secs(30));
        assert!(out.send(mail()));
        out.settled().await;
        assert_eq!(out.counts(), (0, 1, 0));
        assert_eq!(sink.connections(), 2, "two tries, no more");
    }
}

#[tokio::test]
async fn a_hanging_server_holds_up_nobody() {
    let release = Arc::new(Semaphore::new(0));
    let sink = smtp_sink::start(Security::Plain, Behaviour::Hang(release.clone())).await;
    let out = outbox(&sink, Duration::from_millis(300));
    // Handing over returns at once, while the server says nothing.
    assert!(out.send(mail()));
    assert!(out.send(mail()));
    assert_eq!(out.counts(), (0, 0, 0));
    // Each try gives up at SMTP_TIMEOUT; each message twice; then both are given up.
    out.settled().await;
    assert_eq!(out.counts(), (0, 2, 0));
    assert_eq!(sink.connections(), 4);
    release.add_permits(100);
}

#[test]
fn the_configuration_picks_the_mailer() {
    let config = |pairs: &'static [(&'static str, &'static str)]| {
        Config::from_lookup(|k| {
            pairs
                .iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| v.to_string())
        })
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _in = rt.enter();
    // Loopback, nothing set: the console (development).
    assert!(Outbox::from_config(&config(&[]).unwrap())
        .unwrap()
        .enabled());
    // A public address without SMTP_URL: email is off, not printed to a log.
    let public = config(&[("POLLSTR_ADDR", "0.0.0.0:8000")]).unwrap();
    assert!(!Outbox::from_config(&public).unwrap().enabled());
    let with_smtp = config(&[
        ("POLLSTR_ADDR", "0.0.0.0:8000"),
        ("SMTP_URL", "smtps://u:p@mail.example.com"),
        ("MAIL_FROM", "Polls <polls@example.com>"),
    ])
    .unwrap();
    assert!(Outbox::from_config(&with_smtp).unwrap().enabled());
    for (name, value) in [
        ("SMTP_URL", "http://mail.example.com"),
        ("SMTP_URL", "smtp://mail.example.com?tls=none"),
        ("MAIL_FROM", "not an address"),
        ("MAIL_ATTEMPTS", "0"),
        ("SMTP_TIMEOUT", "0s"),
    ] {
        let pairs: &'static [(&'static str, &'static str)] =
            Box::leak(vec![(name, value)].into_boxed_slice());
        let e = config(pairs).unwrap_err();
        assert_eq!(e.name, name, "{value}");
    }
}
