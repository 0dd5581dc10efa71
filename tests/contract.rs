//! The Vonage Verify v1 client against the official OpenAPI spec
//! (`shared/vonage-verify/verify.yml`), served by the Prism mock server.
//!
//! Prism checks each request against the spec and answers HTTP 422 when it breaks it, which
//! the client reports as a transport error: so these tests fail if our requests drift from the
//! spec. Run through `.ci/prism.sh`, which starts Prism and sets `PRISM_URL`; without
//! `PRISM_URL` the test is skipped.

use std::time::Duration;

use pollstr::config::VonageConfig;
use pollstr::two_factor::phone::PhoneNumber;
use pollstr::two_factor::vonage::VonageVerifier;
use pollstr::two_factor::{CheckOutcome, StartOutcome, Verifier};

/// The `request_id` of the spec's success examples.
const SPEC_REQUEST_ID: &str = "abcdef0123456789abcdef0123456789";

#[tokio::test]
async fn the_client_speaks_the_spec() {
    let Some(base_url) = std::env::var("PRISM_URL")
        .ok()
        .filter(|v| !v.trim().is_empty())
    else {
        println!("notice: PRISM_URL is not set: the Prism contract test is skipped");
        return;
    };
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
