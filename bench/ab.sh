#!/usr/bin/env bash
# An A/B of a verified user's poll page and results: two `pollstr` binaries (before and after a
# change on the hot path), measured in turn on this machine in one run, ROUNDS times each
# (alternating, so that the machine's drift falls on both), with bench/run.sh's BENCH_ONLY=pages.
#
#   bash bench/ab.sh OLD_BINARY NEW_BINARY [--postgres]
#
# Build the old one from another checkout (`git worktree add ../old COMMIT && cd ../old &&
# cargo build --release`). Prints each round's requests/s and p99, and the medians.
# AB_ONLY=votes measures votes on poll 1 instead (bench/run.sh's BENCH_ONLY=votes, each round's
# votes checked: none lost or doubled).
# AB_OLD_VARS / AB_NEW_VARS: settings for bench/run.sh on each side, e.g. the same binary without
# and with metrics: AB_NEW_VARS=BENCH_METRICS=1 bash bench/ab.sh BIN BIN.
set -euo pipefail
cd "$(dirname "$0")/.."
old=${1:?usage: bash bench/ab.sh OLD_BINARY NEW_BINARY [--postgres]}
new=${2:?usage: bash bench/ab.sh OLD_BINARY NEW_BINARY [--postgres]}
shift 2
rounds=${AB_ROUNDS:-2}
only=${AB_ONLY:-pages}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for ((round = 1; round <= rounds; round++)); do
  for side in old new; do
    bin=$old vars=${AB_OLD_VARS:-}
    [[ $side == new ]] && bin=$new vars=${AB_NEW_VARS:-}
    echo "== round $round: $side ($bin${vars:+ with $vars})" >&2
    # shellcheck disable=SC2086 # $vars is a list of VAR=VALUE words
    env $vars BENCH_ONLY="$only" BENCH_BIN="$bin" BENCH_OUT="$out/$side-$round.md" \
      bash bench/run.sh "$@" 2>"$out/$side-$round.log" >/dev/null
    grep -h 'scrape' "$out/$side-$round.log" >&2 || true
    grep -h 'vote_check=' "$out/$side-$round.log" | sed "s/^/$side round $round: /" >&2 || true
    grep -E '^(sqlite|postgres)\.(detail|results|votes) ' "$out/$side-$round.log" |
      sed "s/^/$side round $round: /"
  done
done | tee "$out/all.txt"
python3 - "$out/all.txt" <<'PY'
import re, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    m = re.match(r"(\w+) round \d+: (\S+) .*?rps=([\d.]+).*?p99_ms=([\d.]+)", line)
    if m:
        rows.setdefault((m[2], m[1]), []).append((float(m[3]), float(m[4])))
for (scenario, side), v in sorted(rows.items()):
    print(f"{scenario:18} {side}: median {statistics.median(r for r, _ in v):,.0f} req/s, "
          f"p99 {statistics.median(p for _, p in v):.1f} ms ({len(v)} rounds)")
PY
