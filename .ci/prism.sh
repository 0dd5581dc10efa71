#!/usr/bin/env bash
# Runs a command while a Prism mock of an OpenAPI spec serves, with PRISM_URL (or the variable
# named by PRISM_VAR) set for it:
#
#   bash .ci/prism.sh tests/specs/verify.yml -- cargo test
#
# (tests/contract.rs is built to run, instead of being ignored, when PRISM_URL is set.)
# Without a command it runs the contract test alone: `cargo test --test contract`.
# Prism (@stoplight/prism-cli 5) is installed once into $CARGO_TARGET_DIR/prism (target/prism, git-ignored with
# /target), started on 127.0.0.1:$PRISM_PORT (default 4010), and stopped when this exits.
set -euo pipefail

if [[ $# -lt 1 ]]; then
  echo "usage: $0 <openapi spec, e.g. tests/specs/verify.yml> [-- command ...]" >&2
  exit 2
fi
spec_arg=$1
shift
if [[ ${1:-} == -- ]]; then
  shift
fi
if [[ $# -eq 0 ]]; then
  set -- cargo test --test contract
fi
if [[ ! -f $spec_arg ]]; then
  echo "prism.sh: spec not found: $spec_arg" >&2
  exit 2
fi
# Resolve the spec against the caller's directory before moving to the repository root.
spec=$(cd "$(dirname "$spec_arg")" && pwd)/$(basename "$spec_arg")

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

host=127.0.0.1
port=${PRISM_PORT:-4010}
prefix=${CARGO_TARGET_DIR:-target}/prism
prism=$prefix/node_modules/.bin/prism
log=$prefix/prism.log

port_answers() {
  (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
}

if [[ ! -x $prism ]]; then
  echo "prism.sh: installing @stoplight/prism-cli@5 into $prefix"
  mkdir -p "$prefix"
  npm install --prefix "$prefix" --no-audit --no-fund @stoplight/prism-cli@5
fi
echo "prism.sh: $("$prism" --version 2>/dev/null | tail -n 1 || echo 'prism (version unknown)')"

if port_answers; then
  echo "prism.sh: something already listens on $host:$port; stop it or set PRISM_PORT" >&2
  exit 1
fi

prism_pid=
cleanup() {
  if [[ -n $prism_pid ]] && kill -0 "$prism_pid" 2>/dev/null; then
    kill "$prism_pid" 2>/dev/null || true
    wait "$prism_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$prism" mock "$spec" -h "$host" -p "$port" >"$log" 2>&1 &
prism_pid=$!

up=
for _ in $(seq 1 60); do
  if ! kill -0 "$prism_pid" 2>/dev/null; then
    echo "prism.sh: Prism exited before it was ready; its log ($log):" >&2
    cat "$log" >&2
    exit 1
  fi
  if port_answers; then
    up=1
    break
  fi
  sleep 0.5
done
if [[ -z $up ]]; then
  echo "prism.sh: Prism did not answer on $host:$port within 30 s; its log ($log):" >&2
  cat "$log" >&2
  exit 1
fi
echo "prism.sh: Prism is serving $spec on http://$host:$port (pid $prism_pid)"

status=0
env "${PRISM_VAR:-PRISM_URL}=http://$host:$port" "$@" || status=$?
if [[ $status -ne 0 ]]; then
  echo "prism.sh: '$*' failed; the end of Prism's log ($log):" >&2
  tail -n 50 "$log" >&2
fi
exit "$status"
