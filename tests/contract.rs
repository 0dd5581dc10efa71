//! The Vonage Verify v1 client against the official OpenAPI spec (`tests/specs/verify.yml`, a
//! copy of Vonage's, MIT), served by the Prism mock server.
//!
//! Prism checks each request against the spec and answers HTTP 422 when it breaks it, which
//! the client reports as a transport error: so these tests fail if our requests drift from the
//! spec. `bash .ci/prism.sh tests/specs/verify.yml -- cargo test` starts Prism and sets
//! `PRISM_URL`; built without `PRISM_URL`, the test is reported as ignored (build.rs).

use std::time::Duration;

use pollstr::config::VonageConfig;
use pollstr::two_factor::sms::phone::PhoneNumber;
use pollstr::two_factor::sms::vonage::VonageVerifier;
use pollstr::two_factor::sms::{CheckOutcome, StartOutcome, Verifier};

/// The `request_id` of the spec's success examples.
const SPEC_REQUEST_ID: &str = "abcdef0123456789abcdef0123456789";

#[tokio::test]
#[cfg_attr(
    not(pollstr_prism),
    ignore = "needs PRISM_URL (bash .ci/prism.sh tests/specs/verify.yml -- cargo test)"
)]
async fn the_client_speaks_the_spec() {
    let base_url = std::env::var("PRISM_URL")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .expect("PRISM_URL: the Prism mock of the Verify spec");
    let verifier = VonageVerifier::new(VonageConfig {
        api_key: "abcd1234".into(),
        api_secret: "Sup3rS3cr3t!!".into(),
        brand: "Pollstr".into(),
        base_url: base_url.trim_end_matches('/').to_string(),
        timeout: Duration::from_secs(10),
    })
    .expect("build the Vonage client");
    let number = PhoneNumber::parse("+44 7911 123456", None).expect("a valid number");

    let started = verifier.start(&number).await;
    assert_eq!(
        started.as_ref().ok(),
        Some(&StartOutcome::Started {
            request_id: SPEC_REQUEST_ID.into()
        }),
        "POST /json: {started:?}"
    );

    let checked = verifier.check(SPEC_REQUEST_ID, "123456").await;
    assert_eq!(
        checked.as_ref().ok(),
        Some(&CheckOutcome::Verified),
        "POST /check/json: {checked:?}"
    );

    // The first control example is the successful cancel.
    let cancelled = verifier.cancel(SPEC_REQUEST_ID).await;
    assert!(cancelled.is_ok(), "POST /control/json: {cancelled:?}");
}
