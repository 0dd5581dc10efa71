// Rebuild when a migration changes: `sqlx::migrate!` embeds the files at compile time.
//
// The optional test suites are switched on here, at build time, so that a suite that cannot run
// is reported by the test harness as `ignored` (with its reason) instead of passing quietly:
// - `pollstr_postgres`: TEST_DATABASE_URL names a PostgreSQL server (the PostgreSQL half of
//   tests/api);
// - `pollstr_prism`: PRISM_URL points at a Prism mock of the Verify v1 API (tests/contract.rs);
// - `pollstr_prism_v2`: PRISM_V2_URL points at a Prism mock of the Verify v2 API (the same);
// - `pollstr_measure`: POLLSTR_MEASURE is set: the measurements kept beside the tests are built
//   (they print figures and check nothing, so they are not part of the suite).
// Changing any of them rebuilds the crate once (Cargo reruns this script).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
    for (var, cfg) in [
        ("TEST_DATABASE_URL", "pollstr_postgres"),
        ("PRISM_URL", "pollstr_prism"),
        ("PRISM_V2_URL", "pollstr_prism_v2"),
        ("POLLSTR_MEASURE", "pollstr_measure"),
    ] {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        println!("cargo:rerun-if-env-changed={var}");
        if std::env::var(var).is_ok_and(|v| !v.trim().is_empty()) {
            println!("cargo:rustc-cfg={cfg}");
        }
    }
}
