//! The Vonage Verify clients against the official OpenAPI specs, served by the Prism mock
//! server: v1 (`tests/specs/verify.yml`, a copy of Vonage's, MIT) and v2 (Vonage's
//! `verify-v2.yml`, which states no licence and so is not in this repository: CI serves its
//! reference copy; without it, the v2 test is ignored with a notice).
//!
//! Prism checks each request against the spec and answers HTTP 422 when it breaks it, which
//! the client reports as a transport error: so these tests fail if our requests drift from the
//! spec. `bash .ci/prism.sh tests/specs/verify.yml -- cargo test` starts Prism and sets
//! `PRISM_URL`; built without `PRISM_URL`, the test is reported as ignored (build.rs). The v2
//! test reads `PRISM_V2_URL` the same way:
//! `PRISM_PORT=4011 PRISM_VAR=PRISM_V2_URL bash .ci/prism.sh path/to/verify-v2.yml`.

use std::time::Duration;

use pollstr::config::{VerifySettings, VonageConfig};
use pollstr::two_factor::sms::phone::PhoneNumber;
use pollstr::two_factor::sms::vonage::VonageVerifier;
use pollstr::two_factor::sms::vonage_v2::VonageV2Verifier;
use pollstr::two_factor::sms::{CheckOutcome, NextOutcome, StartOutcome, Verifier};

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

    let started = verifier.start(&number, "u1").await;
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

/// The `request_id` example of the v2 spec.
const V2_REQUEST_ID: &str = "c11236f4-00bf-4b89-84ba-88b25df97315";

#[tokio::test]
#[cfg_attr(
    not(pollstr_prism_v2),
    ignore = "needs PRISM_V2_URL: Prism serving Vonage's verify-v2.yml (not in this repository)"
)]
async fn the_v2_client_speaks_the_spec() {
    let base_url = std::env::var("PRISM_V2_URL")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .expect("PRISM_V2_URL: the Prism mock of the Verify v2 spec");
    let verifier = VonageV2Verifier::new(
        VonageConfig {
            api_key: "abcd1234".into(),
            api_secret: "Sup3rS3cr3t!!".into(),
            brand: "Pollstr".into(),
            base_url: base_url.trim_end_matches('/').to_string(),
            timeout: Duration::from_secs(10),
        },
        None,
        VerifySettings::default(),
    )
    .expect("build the v2 client");
    let number = PhoneNumber::parse("+44 7911 123456", None).expect("a valid number");

    let started = verifier.start(&number, "u1").await;
    assert_eq!(
        started.as_ref().ok(),
        Some(&StartOutcome::Started {
            request_id: V2_REQUEST_ID.into()
        }),
        "POST /: {started:?}"
    );
    let checked = verifier.check(V2_REQUEST_ID, "123456").await;
    assert_eq!(
        checked.as_ref().ok(),
        Some(&CheckOutcome::Verified),
        "POST /{{request_id}}: {checked:?}"
    );
    let moved = verifier.next_channel(V2_REQUEST_ID).await;
    assert_eq!(
        moved.as_ref().ok(),
        Some(&NextOutcome::Moved),
        "POST /{{request_id}}/next_workflow: {moved:?}"
    );
    let cancelled = verifier.cancel(V2_REQUEST_ID).await;
    assert!(cancelled.is_ok(), "DELETE /{{request_id}}: {cancelled:?}");
}
