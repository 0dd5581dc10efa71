#!/usr/bin/env bash
# The browser suite (tests/e2e.rs): headless Chromium through chromedriver against the `pollstr`
# binary that `cargo test` builds. Installs Debian's chromium and chromium-driver when they are
# missing, then runs the suite with POLLSTR_E2E_REQUIRED=1 so that a missing browser fails
# instead of being ignored. Extra arguments go to the test binary (e.g. a test name).
# POLLSTR_SCREENSHOTS=1 bash .ci/e2e.sh also refreshes docs/screenshots/.
# `bash .ci/e2e.sh --prepare` only installs (.ci/run then runs the suite inside `cargo test`).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

if [[ ! -x /usr/bin/chromium || ! -x /usr/bin/chromedriver ]]; then
  echo "e2e.sh: installing chromium and chromium-driver (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium chromium-driver ca-certificates >/dev/null
fi
/usr/bin/chromium --version 2>/dev/null || true
/usr/bin/chromedriver --version

if [[ ${1:-} == --prepare ]]; then
  exit 0
fi

echo "== cargo test --test e2e"
POLLSTR_E2E_REQUIRED=1 cargo test --test e2e -- "$@"
