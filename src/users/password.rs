//! Password hashing: argon2id for new hashes; Django `pbkdf2_sha256$…` hashes still verify, and
//! are upgraded to argon2id at the next successful login (as Django's `must_update` does).
//!
//! Hashing is slow on purpose, so it runs on the blocking pool, and a semaphore bounds how many
//! run at once: a login storm cannot take every core or unbounded memory (argon2id uses 19 MiB).
//! In front of it, each server's [`HashQueue`] turns away what would wait too long, and keeps
//! half of its places for password checks: a sign-up flood is refused, logins still get in.

use std::sync::{Arc, LazyLock};

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::Engine;
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use crate::error::AppError;

/// A hash of a password that no one knows, checked when the user is unknown so that an unknown
/// username costs as much time as a wrong password.
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| hash_blocking("pollstr-dummy-password-for-timing"));

/// At most this many hashes at once: one core is always left for serving pages, so a login
/// storm slows logins down, not the rest of the site (and the working memory stays bounded).
static HASHING: LazyLock<Hashing> = LazyLock::new(|| Hashing::new(hashing_slots()));

/// Hashing slots: a permit per hash running. One for the process ([`HASHING`]); tests make
/// their own, so that none counts another's hashes.
struct Hashing {
    slots: Arc<Semaphore>,
    #[cfg(test)]
    load: Arc<tests::Load>,
}

impl Hashing {
    fn new(slots: usize) -> Hashing {
        Hashing {
            slots: Arc::new(Semaphore::new(slots)),
            #[cfg(test)]
            load: Arc::default(),
        }
    }

    /// Runs `f` on the blocking pool once a slot is free. The slot goes with the work, not with
    /// the waiting request: a client that hangs up mid-login drops the request, but the hash
    /// runs on, and must go on counting against the bound (else logging in and hanging up in a
    /// loop would run any number of hashes, each with its 19 MiB, at once).
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        let permit = self.slots.clone().acquire_owned().await?;
        #[cfg(test)]
        let load = self.load.clone();
        Ok(tokio::task::spawn_blocking(move || {
            #[cfg(test)]
            let running = load.start();
            let result = f();
            #[cfg(test)]
            drop(running);
            drop(permit);
            result
        })
        .await?)
    }
}

fn hashing_slots() -> usize {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    cores.saturating_sub(1).max(1)
}

/// Places in a server's [`HashQueue`] per hashing slot: at the 60–90 hashes a second one slot
/// makes on the machines measured (BENCHMARKS.md), a full queue is under a second of waiting.
const QUEUE_PER_SLOT: usize = 32;

/// Room for the hashes of one server (password checks and sign-ups), waiting for a hashing slot
/// or running. When it is full a login or sign-up is turned away at once ("try again in a
/// moment", 429 with `Retry-After`) instead of queueing behind a burst: other people's logins
/// wait at most for what the queue holds.
///
/// Sign-ups may hold at most half of the places ([`HashQueue::enter_signup`]): a sign-up flood
/// (one address made 1,316 accounts a minute) fills its half and is refused, while logins keep
/// the other half, and an admitted login waits behind at most half a queue of sign-ups.
#[derive(Clone, Debug)]
pub struct HashQueue {
    places: Arc<Semaphore>,
    signups: Arc<Semaphore>,
    capacity: usize,
    /// Requests turned away because the queue was full (for the metrics).
    refused: Arc<std::sync::atomic::AtomicU64>,
}

impl Default for HashQueue {
    fn default() -> Self {
        HashQueue::with_capacity(hashing_slots() * QUEUE_PER_SLOT)
    }
}

/// A place in a [`HashQueue`], held while a password is hashed or checked. A request that is
/// dropped gives its place back; its hash, if started, still holds a hashing slot.
#[derive(Debug)]
#[must_use = "the place is given back when dropped"]
pub struct Place {
    _place: tokio::sync::OwnedSemaphorePermit,
    _signup: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl HashQueue {
    /// A queue of `capacity` places (at least two: one a sign-up may take, one it may not).
    pub fn with_capacity(capacity: usize) -> HashQueue {
        let capacity = capacity.max(2);
        HashQueue {
            places: Arc::new(Semaphore::new(capacity)),
            signups: Arc::new(Semaphore::new(capacity / 2)),
            capacity,
            refused: Arc::default(),
        }
    }

    /// How many hashes it holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many places are taken now.
    pub fn depth(&self) -> usize {
        self.capacity - self.places.available_permits().min(self.capacity)
    }

    /// How many requests were turned away so far.
    pub fn refusals(&self) -> u64 {
        self.refused.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn turned_away(&self, message: &str) -> AppError {
        self.refused
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        busy(message)
    }

    /// How many of them sign-ups may hold.
    pub fn signup_share(&self) -> usize {
        self.capacity / 2
    }

    /// A place for a password check (a login, or a page asking for the password again).
    pub fn enter(&self) -> Result<Place, AppError> {
        let place = self.places.clone().try_acquire_owned().map_err(|_| {
            self.turned_away("Many people are signing in right now. Please try again in a moment.")
        })?;
        Ok(Place {
            _place: place,
            _signup: None,
        })
    }

    /// A place for a sign-up's hash, within the sign-ups' share.
    pub fn enter_signup(&self) -> Result<Place, AppError> {
        let refused = |_| {
            self.turned_away("Many people are signing up right now. Please try again in a moment.")
        };
        let signup = self.signups.clone().try_acquire_owned().map_err(refused)?;
        let place = self.places.clone().try_acquire_owned().map_err(refused)?;
        Ok(Place {
            _place: place,
            _signup: Some(signup),
        })
    }
}

fn busy(message: &str) -> AppError {
    AppError::TooManyRequests {
        message: message.into(),
        retry_after_secs: 2,
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Valid,
    /// Valid, and the stored hash should be replaced by this argon2id hash.
    ValidUpgrade(String),
    Invalid,
}

/// argon2's working memory (19 MiB with the default parameters), kept and reused: allocating it
/// for every hash on whichever blocking thread runs it leaves each allocator arena holding its
/// own copy, and the process grows to hundreds of megabytes after a few logins.
static WORK_MEMORY: std::sync::Mutex<Vec<Vec<Block>>> = std::sync::Mutex::new(Vec::new());

/// The largest memory cost accepted from a stored hash (64 MiB), so an imported hash cannot make
/// a login allocate without bound.
const MAX_M_COST_KIB: u32 = 64 * 1024;

fn argon2_into(
    algorithm: Algorithm,
    version: Version,
    params: Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> bool {
    #[cfg(test)]
    tests::ARGON2_RUNS.with(|n| n.set(n.get() + 1));
    let blocks = params.block_count();
    let mut memory = WORK_MEMORY
        .lock()
        .ok()
        .and_then(|mut pool| pool.pop())
        .unwrap_or_default();
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    let ok = Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password, salt, out, &mut memory[..blocks])
        .is_ok();
    if let Ok(mut pool) = WORK_MEMORY.lock() {
        pool.push(memory);
    }
    ok
}

/// A new argon2id hash (default parameters: m=19456 KiB, t=2, p=1) as a PHC string.
pub fn hash_blocking(password: &str) -> String {
    let params = Params::default();
    let salt = Salt::generate();
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    let hashed = argon2_into(
        Algorithm::Argon2id,
        Version::V0x13,
        params.clone(),
        password.as_bytes(),
        &salt,
        &mut out,
    );
    // Only absurd parameters or a failing RNG make this fail, never user input.
    assert!(hashed, "argon2 hashing failed");
    PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).expect("default argon2 parameters"),
        salt: Some(salt),
        hash: Some(Output::new(&out).expect("32-byte output")),
    }
    .to_string()
}

fn verify_argon2(password: &str, stored: &str) -> bool {
    let Ok(phc) = PasswordHash::new(stored) else {
        return false;
    };
    let (Ok(algorithm), Ok(params), Some(salt), Some(expected)) = (
        Algorithm::new(phc.algorithm.as_str()),
        Params::try_from(&phc),
        phc.salt,
        phc.hash,
    ) else {
        return false;
    };
    let version = match phc.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    if params.m_cost() > MAX_M_COST_KIB || params.t_cost() > 10 || params.p_cost() > 8 {
        return false;
    }
    let mut out = vec![0u8; expected.len()];
    argon2_into(
        algorithm,
        version,
        params,
        password.as_bytes(),
        &salt,
        &mut out,
    ) && bool::from(out.as_slice().ct_eq(expected.as_bytes()))
}

fn verify_blocking(password: &str, stored: &str) -> Verdict {
    if stored.starts_with("$argon2") {
        return if verify_argon2(password, stored) {
            Verdict::Valid
        } else {
            Verdict::Invalid
        };
    }
    if stored.starts_with("pbkdf2_sha256$") {
        return if verify_django_pbkdf2(password, stored) {
            Verdict::ValidUpgrade(hash_blocking(password))
        } else {
            Verdict::Invalid
        };
    }
    Verdict::Invalid
}

/// Django's `pbkdf2_sha256$<iterations>$<salt>$<base64 hash>`: the salt is used as raw ASCII
/// bytes, the hash is padded standard base64.
pub fn verify_django_pbkdf2(password: &str, stored: &str) -> bool {
    let parts: Vec<&str> = stored.split('$').collect();
    let [_, iterations, salt, expected] = parts.as_slice() else {
        return false;
    };
    let Ok(iterations) = iterations.parse::<u32>() else {
        return false;
    };
    // Bound the work an imported hash can ask for.
    if iterations == 0 || iterations > 10_000_000 {
        return false;
    }
    let Ok(expected) = base64::engine::general_purpose::STANDARD.decode(expected) else {
        return false;
    };
    if expected.is_empty() || expected.len() > 64 {
        return false;
    }
    let mut out = vec![0u8; expected.len()];
    pbkdf2::pbkdf2_hmac::<pbkdf2::sha2::Sha256>(
        password.as_bytes(),
        salt.as_bytes(),
        iterations,
        &mut out,
    );
    bool::from(out.ct_eq(&expected))
}

/// Runs `f` on the blocking pool in one of the process's [`HASHING`] slots.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> anyhow::Result<T> {
    HASHING.run(f).await
}

/// Hashes a new password with argon2id.
pub async fn hash(password: String) -> anyhow::Result<String> {
    blocking(move || hash_blocking(&password)).await
}

/// Checks `password` against `stored`; with no stored hash (unknown user) it checks a dummy hash
/// and answers `Invalid` in about the same time.
pub async fn verify(password: String, stored: Option<String>) -> anyhow::Result<Verdict> {
    blocking(move || check_blocking(&password, stored.as_deref())).await
}

/// Every wrong password costs one argon2 hash, whatever is stored: a Django pbkdf2 hash checks
/// in a few milliseconds and an unusable one (`!…`) in none, where an unknown user's dummy
/// argon2 check takes tens, and the difference would tell which usernames exist.
fn check_blocking(password: &str, stored: Option<&str>) -> Verdict {
    let verdict = stored.map_or(Verdict::Invalid, |s| verify_blocking(password, s));
    if verdict == Verdict::Invalid && !stored.is_some_and(|s| s.starts_with("$argon2")) {
        let _ = verify_blocking(password, &DUMMY_HASH);
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        /// argon2 computations on this thread.
        pub(super) static ARGON2_RUNS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    /// Hashes running now in one [`Hashing`], and the most seen at once.
    #[derive(Default)]
    pub(super) struct Load {
        running: AtomicUsize,
        peak: AtomicUsize,
    }

    pub(super) struct Running(Arc<Load>);

    impl Load {
        pub(super) fn start(self: Arc<Self>) -> Running {
            let now = self.running.fetch_add(1, SeqCst) + 1;
            self.peak.fetch_max(now, SeqCst);
            Running(self)
        }
    }

    impl Drop for Running {
        fn drop(&mut self) {
            self.0.running.fetch_sub(1, SeqCst);
        }
    }

    /// A burst of checks runs at most one hash per hashing slot at a time (cores − 1, at least
    /// one). The slots are this test's own: no other test's hashes take them or count here.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_hashes_are_bounded() {
        let hashing = Arc::new(Hashing::new(hashing_slots()));
        let checks: Vec<_> = (0..12)
            .map(|i| {
                let hashing = hashing.clone();
                tokio::spawn(async move {
                    let guess = format!("guess-{i}");
                    hashing.run(move || check_blocking(&guess, None)).await
                })
            })
            .collect();
        for c in checks {
            assert_eq!(c.await.unwrap().unwrap(), Verdict::Invalid);
        }
        let peak = hashing.load.peak.load(SeqCst);
        assert!(
            (1..=hashing_slots()).contains(&peak),
            "{peak} hashes at once"
        );
    }

    /// Sign-ups fill their half of the queue and are refused; password checks still enter,
    /// and take the whole queue when there are no sign-ups.
    #[test]
    fn sign_ups_leave_half_the_queue_to_logins() {
        let queue = HashQueue::with_capacity(8);
        let signups: Vec<Place> = (0..4).map(|_| queue.enter_signup().unwrap()).collect();
        let refused = queue.enter_signup().unwrap_err();
        assert!(
            matches!(refused, AppError::TooManyRequests { .. }),
            "{refused:?}"
        );
        let logins: Vec<Place> = (0..4).map(|_| queue.enter().unwrap()).collect();
        assert!(queue.enter().is_err(), "the queue is full");
        drop(signups);
        let more: Vec<Place> = (0..4).map(|_| queue.enter().unwrap()).collect();
        // Logins hold every place: a sign-up finds none.
        assert!(queue.enter_signup().is_err());
        drop((logins, more));
        assert!(queue.enter_signup().is_ok());
    }

    #[test]
    fn every_wrong_password_costs_one_argon2_hash() {
        LazyLock::force(&DUMMY_HASH);
        let argon2 = hash_blocking("the-right-one");
        for stored in [Some(SEED), Some("!unusable"), None, Some(argon2.as_str())] {
            let before = ARGON2_RUNS.with(|n| n.get());
            assert_eq!(check_blocking("wrong", stored), Verdict::Invalid);
            let runs = ARGON2_RUNS.with(|n| n.get()) - before;
            assert_eq!(runs, 1, "{stored:?}");
        }
    }

    const SEED: &str =
        "pbkdf2_sha256$24000$rk8toKlZt2vr$dsOOeY/jjjwYLqkmaT5gcRYSrtFabI+eZVgbPylP9EA=";

    #[test]
    fn django_seed_hash() {
        assert!(verify_django_pbkdf2("test1234", SEED));
        assert!(!verify_django_pbkdf2("test12345", SEED));
        assert!(!verify_django_pbkdf2(
            "test1234",
            "pbkdf2_sha256$x$salt$abc="
        ));
        assert!(!verify_django_pbkdf2(
            "test1234",
            "pbkdf2_sha256$24000$salt"
        ));
    }

    #[test]
    fn django_hash_upgrades_to_argon2() {
        match verify_blocking("test1234", SEED) {
            Verdict::ValidUpgrade(h) => {
                assert!(h.starts_with("$argon2id$"));
                assert_eq!(verify_blocking("test1234", &h), Verdict::Valid);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn hashes_made_by_the_argon2_crate_still_verify() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let theirs = Argon2::default()
            .hash_password(b"correct horse")
            .unwrap()
            .to_string();
        assert_eq!(verify_blocking("correct horse", &theirs), Verdict::Valid);
        assert_eq!(verify_blocking("wrong horse", &theirs), Verdict::Invalid);
        let ours = hash_blocking("correct horse");
        assert!(
            ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{ours}"
        );
        assert!(Argon2::default()
            .verify_password(b"correct horse", ours.as_str())
            .is_ok());
        // A stored hash asking for 1 GiB of memory is refused, not computed.
        let greedy = ours.replace("m=19456", "m=1048576");
        assert_eq!(verify_blocking("correct horse", &greedy), Verdict::Invalid);
    }

    #[test]
    fn argon2_round_trip_and_garbage() {
        let h = hash_blocking("correct horse");
        assert_eq!(verify_blocking("correct horse", &h), Verdict::Valid);
        assert_eq!(verify_blocking("wrong horse", &h), Verdict::Invalid);
        assert_eq!(verify_blocking("x", "!"), Verdict::Invalid);
        assert_eq!(verify_blocking("x", "$argon2id$garbage"), Verdict::Invalid);
    }

    /// On hashing slots of its own, so the counts below are this test's alone.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hash_keeps_its_permit_when_the_request_is_dropped() {
        let hashing = Arc::new(Hashing::new(2));
        let slots = hashing.slots.clone();
        let permits = slots.available_permits();
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let request = tokio::spawn(async move {
            hashing
                .run(move || {
                    started_tx.send(()).unwrap();
                    release_rx.recv().unwrap();
                })
                .await
        });
        tokio::task::spawn_blocking(move || started_rx.recv().unwrap())
            .await
            .unwrap();
        // The client hangs up: the request is dropped while its hash still runs.
        request.abort();
        assert!(request.await.unwrap_err().is_cancelled());
        assert_eq!(slots.available_permits(), permits - 1);
        // The hash ends: its permit comes back.
        release_tx.send(()).unwrap();
        while slots.available_permits() < permits {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}
