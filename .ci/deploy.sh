#!/usr/bin/env bash
# What the deployment test (tests/api/deploy.rs) needs: Debian's nginx, openssl and
# systemd-analyze, installed with apt-get when missing. The test itself runs inside `cargo test`
# on the files in deploy/; .ci/run sets POLLSTR_DEPLOY_REQUIRED=1 so that a missing tool fails
# instead of skipping. `bash .ci/deploy.sh` alone installs, then runs only that test.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

missing=()
[[ -x /usr/sbin/nginx ]] || missing+=(nginx-light)
command -v openssl >/dev/null || missing+=(openssl)
command -v systemd-analyze >/dev/null || missing+=(systemd)
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "deploy.sh: installing ${missing[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # nginx is only run by the test, on loopback ports: not started as a service.
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
/usr/sbin/nginx -v

if [[ ${1:-} == --prepare ]]; then
  exit 0
fi

echo "== cargo test --test api deploy::"
POLLSTR_DEPLOY_REQUIRED=1 cargo test --test api deploy:: -- --test-threads=1
