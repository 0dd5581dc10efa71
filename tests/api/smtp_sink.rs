//! A small SMTP server for the mail tests, on loopback: it speaks enough SMTP (EHLO, STARTTLS,
//! AUTH PLAIN, MAIL, RCPT, DATA, QUIT) for `lettre`, over plain TCP, STARTTLS or
//! implicit TLS with a self-signed certificate made at start (rcgen), and hands every message
//! it accepts to the test. It can also refuse (554 at the greeting), drop the connection, or
//! hang (accept and say nothing until the test lets it go).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Semaphore};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    Plain,
    StartTls,
    Implicit,
}

#[derive(Clone)]
pub enum Behaviour {
    Accept,
    Refuse,
    Drop,
    /// Says nothing until the semaphore gets a permit.
    Hang(Arc<Semaphore>),
}

/// A message the sink accepted.
#[derive(Debug)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
    /// Whether it came over TLS.
    pub tls: bool,
    /// The AUTH line's mechanism, if the client logged in.
    pub auth: Option<String>,
}

pub struct Sink {
    pub port: u16,
    /// The certificate to trust (PEM).
    pub cert_pem: Vec<u8>,
    pub received: tokio::sync::Mutex<mpsc::UnboundedReceiver<Received>>,
    pub connections: Arc<AtomicUsize>,
}

impl Sink {
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// The next message accepted (waits for it).
    pub async fn next(&self) -> Received {
        self.received
            .lock()
            .await
            .recv()
            .await
            .expect("the sink is running")
    }
}

pub async fn start(security: Security, behaviour: Behaviour) -> Sink {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert_pem = cert.cert.pem().into_bytes();
    let der = cert.cert.der().clone();
    let key = rustls_pki_types_key(cert.signing_key.serialize_der());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![der], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::unbounded_channel();
    let connections = Arc::new(AtomicUsize::new(0));
    let count = connections.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            count.fetch_add(1, Ordering::SeqCst);
            let (tx, acceptor, behaviour) = (tx.clone(), acceptor.clone(), behaviour.clone());
            tokio::spawn(async move {
                match behaviour {
                    Behaviour::Drop => drop(stream),
                    Behaviour::Hang(release) => {
                        let _held = stream;
                        let _ = release.acquire().await;
                    }
                    Behaviour::Refuse => {
                        let mut stream = stream;
                        let _ = stream.write_all(b"554 no service here\r\n").await;
                    }
                    Behaviour::Accept => match security {
                        Security::Implicit => {
                            if let Ok(tls) = acceptor.accept(stream).await {
                                let _ = session(tls, true, false, &tx).await;
                            }
                        }
                        _ => {
                            let starttls = security == Security::StartTls;
                            let mut stream = stream;
                            if let Ok(true) = session(&mut stream, false, starttls, &tx).await {
                                if let Ok(tls) = acceptor.accept(stream).await {
                                    let _ = session_after_upgrade(tls, &tx).await;
                                }
                            }
                        }
                    },
                }
            });
        }
    });
    Sink {
        port,
        cert_pem,
        received: tokio::sync::Mutex::new(rx),
        connections,
    }
}

fn rustls_pki_types_key(der: Vec<u8>) -> tokio_rustls::rustls::pki_types::PrivateKeyDer<'static> {
    tokio_rustls::rustls::pki_types::PrivateKeyDer::Pkcs8(der.into())
}

async fn session_after_upgrade<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    tx: &mpsc::UnboundedSender<Received>,
) -> std::io::Result<bool> {
    conversation(stream, true, false, tx, false).await
}

/// The SMTP conversation; `Ok(true)` when the client asked for STARTTLS (the caller upgrades).
async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    tls: bool,
    offer_starttls: bool,
    tx: &mpsc::UnboundedSender<Received>,
) -> std::io::Result<bool> {
    conversation(stream, tls, offer_starttls, tx, true).await
}

async fn conversation<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    tls: bool,
    offer_starttls: bool,
    tx: &mpsc::UnboundedSender<Received>,
    greet: bool,
) -> std::io::Result<bool> {
    let mut io = BufReader::new(stream);
    if greet {
        io.get_mut().write_all(b"220 sink ESMTP\r\n").await?;
    }
    let (mut from, mut to, mut auth) = (String::new(), Vec::new(), None);
    loop {
        let mut line = String::new();
        if io.read_line(&mut line).await? == 0 {
            return Ok(false);
        }
        let upper = line.trim_end().to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            if offer_starttls {
                b"250-sink\r\n250-STARTTLS\r\n250 8BITMIME\r\n"
            } else {
                b"250-sink\r\n250-AUTH PLAIN\r\n250 8BITMIME\r\n"
            }
        } else if upper == "STARTTLS" && offer_starttls {
            io.get_mut().write_all(b"220 go ahead\r\n").await?;
            return Ok(true);
        } else if upper.starts_with("AUTH ") {
            auth = upper.split_whitespace().nth(1).map(str::to_string);
            b"235 ok\r\n"
        } else if upper.starts_with("MAIL FROM:") {
            from = line.trim_end()[10..].trim().to_string();
            b"250 ok\r\n"
        } else if upper.starts_with("RCPT TO:") {
            to.push(line.trim_end()[8..].trim().to_string());
            b"250 ok\r\n"
        } else if upper == "DATA" {
            io.get_mut().write_all(b"354 go on\r\n").await?;
            let mut data = String::new();
            loop {
                let mut l = String::new();
                if io.read_line(&mut l).await? == 0 {
                    return Ok(false);
                }
                if l == ".\r\n" {
                    break;
                }
                data.push_str(&l);
            }
            let _ = tx.send(Received {
                from: std::mem::take(&mut from),
                to: std::mem::take(&mut to),
                data,
                tls,
                auth: auth.clone(),
            });
            b"250 queued\r\n"
        } else if upper == "QUIT" {
            io.get_mut().write_all(b"221 bye\r\n").await?;
            return Ok(false);
        } else if upper == "RSET" || upper == "NOOP" {
            b"250 ok\r\n"
        } else {
            b"502 not here\r\n"
        };
        io.get_mut().write_all(reply).await?;
    }
}
