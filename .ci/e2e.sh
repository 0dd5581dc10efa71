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

# The Nu Html Checker: the suite validates every page it checks (needs Java).
vnu_dir=${CARGO_TARGET_DIR:-target}/vnu
if [[ ! -f $vnu_dir/node_modules/vnu-jar/build/dist/vnu.jar ]]; then
  echo "e2e.sh: installing the Nu Html Checker (npm vnu-jar)"
  mkdir -p "$vnu_dir"
  npm install --prefix "$vnu_dir" --no-save --silent vnu-jar@26 >/dev/null
fi
if ! command -v java >/dev/null; then
  echo "e2e.sh: installing Java for the Nu Html Checker (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq default-jre-headless >/dev/null
fi

if [[ ${1:-} == --prepare ]]; then
  exit 0
fi

echo "== cargo test --test e2e"
POLLSTR_E2E_REQUIRED=1 cargo test --test e2e -- "$@"
