#!/usr/bin/env bash
# Benchmarks: how fast Pollstr is, against the ceiling (a bare axum "hello" server,
# examples/hello.rs) and against the original (the Django app, ~320 requests/s on its poll list).
#
#   bash bench/run.sh [--postgres]
#
# Builds the release binaries, measures hello, then starts `pollstr serve` on a fresh SQLite
# database (and on a fresh PostgreSQL database with --postgres or when TEST_DATABASE_URL is set),
# makes verified users through the real HTTP flow (bench/setup.py), drives the scenarios with wrk
# (bench/wrk/*.lua), checks the votes, and writes the results into BENCHMARKS.md (between the
# "bench:results" markers; the rest of the file is kept).
#
# Settings (environment):
#   BENCH_DURATION=10     seconds per scenario
#   BENCH_CONNS=64        connections for hello, reads, votes and the page views of the storm
#   BENCH_LOGIN_CONNS=16  connections for the login scenario
#   BENCH_STORM_CONNS=50  concurrent logins of the storm
#   BENCH_THREADS=2       wrk threads (-t) of the single-generator scenarios; the storm runs two
#                         generators with one thread each
#   BENCH_USERS           verified users (default 4 x BENCH_CONNS; at least 2 x BENCH_CONNS)
#   BENCH_LOGIN_PAIRS     fresh sessions fetched per login scenario (default 300 x duration)
#   BENCH_POPULAR_VOTES=1000000  votes loaded on poll 2 for the "popular poll" scenarios (0: none)
#   BENCH_POPULAR_ROUNDS=3       rounds of the popular poll's pages, each against its no-vote twin
#   BENCH_ONLY=popular    run only the popular-poll scenarios (e.g. a 10,000,000-vote run);
#                         BENCH_ONLY=storm only the login storm; BENCH_ONLY=attacks only the
#                         attacks of issue 23 (bench/attack.py: non-reading pipelining sockets, a
#                         slowloris, a sign-up flood, each from its own loopback address, while a
#                         visitor loads the poll list and a user logs in); BENCH_ONLY=pages only
#                         a verified user's poll page and results (the A/B of bench/ab.sh);
#                         BENCH_ONLY=votes only votes on poll 1 and their check (AB_ONLY=votes)
#   BENCH_BIN             the server to measure (default: this checkout's release build)
#   BENCH_METRICS=1       serve metrics on their own listener (METRICS_ADDR) and scrape them once
#                         a second while the scenarios run, as Prometheus would (issue 28's A/B:
#                         AB_NEW_VARS=BENCH_METRICS=1 bash bench/ab.sh BIN BIN)
#   BENCH_OUT=BENCHMARKS.md
#   TEST_DATABASE_URL     a PostgreSQL server (postgres://user@host:port/db) to also run on;
#                         --postgres alone uses postgres://postgres@127.0.0.1:5432/postgres
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

DURATION=${BENCH_DURATION:-10}
CONNS=${BENCH_CONNS:-64}
LOGIN_CONNS=${BENCH_LOGIN_CONNS:-16}
STORM_CONNS=${BENCH_STORM_CONNS:-50}
THREADS=${BENCH_THREADS:-2}
USERS=${BENCH_USERS:-$((CONNS * 4))}
LOGIN_PAIRS=${BENCH_LOGIN_PAIRS:-$((DURATION * 300))}
OUT=${BENCH_OUT:-BENCHMARKS.md}
POPULAR=${BENCH_POPULAR_VOTES:-1000000}
ROUNDS=${BENCH_POPULAR_ROUNDS:-3}
ONLY=${BENCH_ONLY:-}
METRICS=${BENCH_METRICS:-0}
# The server measured: this checkout's release build, or another binary (an A/B: bench/ab.sh).
BIN=${BENCH_BIN:-$ROOT/target/release/pollstr}

PG_SERVER=${TEST_DATABASE_URL:-}
for arg in "$@"; do
  case $arg in
    --postgres) PG_SERVER=${PG_SERVER:-postgres://postgres@127.0.0.1:5432/postgres} ;;
    *) echo "usage: bash bench/run.sh [--postgres]" >&2; exit 2 ;;
  esac
done
if ((USERS < 2 * CONNS)); then
  echo "BENCH_USERS must be at least 2 x BENCH_CONNS (each user has one vote in flight at most)" >&2
  exit 2
fi
TOOLS="wrk python3 curl"
[[ $ONLY == attacks ]] && TOOLS="python3 curl" # the attacks and their probes are bench/attack.py
for tool in $TOOLS; do
  command -v "$tool" >/dev/null || { echo "$tool is needed (apt-get install -y $tool)" >&2; exit 1; }
done
if [[ -n $PG_SERVER ]] && ! command -v psql >/dev/null; then
  echo "psql is needed for the PostgreSQL run (apt-get install -y postgresql-client)" >&2
  exit 1
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pollstr-bench.XXXXXX")
RES=$WORK/results
mkdir -p "$RES"
PIDS=()
PG_DB=

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if [[ -n $PG_DB ]]; then
    psql "$PG_SERVER" -qAt -c "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "== $*" >&2; }

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_ready URL PID: until URL answers 200, the process dies, or 60 s pass.
wait_ready() {
  local url=$1 pid=$2 i
  for ((i = 0; i < 600; i++)); do
    if curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then echo "the server exited (see above)" >&2; return 1; fi
    sleep 0.1
  done
  echo "$url did not answer within 60 s" >&2
  return 1
}

# stop PID: SIGTERM, then SIGKILL after 10 s.
stop() {
  local pid=$1 i
  kill "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# hwm PID: the process's peak resident memory (VmHWM), in kB.
hwm() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }

# cpu_ticks PID: the process's CPU time so far (user + system, all its threads), in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICK=$(getconf CLK_TCK)

# bench NAME URL SCRIPT CONNS THREADS [VAR=VALUE...]: one wrk run against the server $SERVER_PID.
# Its summary line goes to $RES/NAME, with the CPU time the server and wrk used during the run.
bench() {
  local name=$1 url=$2 script=$3 conns=$4 threads=$5
  shift 5
  log "$name: wrk -t$threads -c$conns -d${DURATION}s $url"
  local before after wrk_cpu TIMEFORMAT='%U %S'
  before=$(cpu_ticks "$SERVER_PID")
  wrk_cpu=$({ time env BENCH_RESULT="$RES/$name" BENCH_THREADS="$threads" "$@" \
    wrk -t"$threads" -c"$conns" -d"${DURATION}s" --timeout 5s --latency \
    -s "bench/wrk/$script" "$url" >"$WORK/$name.wrk" 2>&1; } 2>&1) || {
    cat "$WORK/$name.wrk" >&2
    return 1
  }
  after=$(cpu_ticks "$SERVER_PID")
  echo "$(cat "$RES/$name")" \
    "server_cpu_s=$(awk -v t="$((after - before))" -v hz="$TICK" 'BEGIN {print t / hz}')" \
    "wrk_cpu_s=$(echo "$wrk_cpu" | awk '{print $1 + $2}')" >"$RES/$name.tmp"
  mv "$RES/$name.tmp" "$RES/$name"
  echo "$name $(cat "$RES/$name")" >&2
}

# With BENCH_BIN given (an A/B's binaries, built elsewhere), this checkout's server is not built.
if [[ -z ${BENCH_BIN:-} ]]; then
  log "cargo build --release"
  cargo build --release
fi
if [[ $ONLY != attacks && ! ( -n ${BENCH_BIN:-} && -x target/release/examples/hello ) ]]; then
  log "cargo build --release --example hello"
  cargo build --release --example hello
fi

# The machine and the run, for the report.
{
  echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "cores=$(nproc)"
  echo "memory=$(free -h | awk '/^Mem:/ {print $2}')"
  echo "kernel=$(uname -sr)"
  echo "loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "wrk=$(command -v wrk >/dev/null && wrk -v 2>&1 | head -n 1 | awk '{print $1, $2}' || echo none)"
  echo "rustc=$(rustc --version)"
  echo "commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git status --porcelain 2>/dev/null | grep -q . && echo ' (with uncommitted changes)')"
  echo "duration=$DURATION conns=$CONNS login_conns=$LOGIN_CONNS storm_conns=$STORM_CONNS threads=$THREADS users=$USERS popular_votes=$POPULAR popular_rounds=$ROUNDS"
} >"$RES/meta"

# --- the ceiling ---------------------------------------------------------------------------------
if [[ $ONLY != attacks ]]; then
  port=$(free_port)
  target/release/examples/hello "127.0.0.1:$port" 2>"$WORK/hello.log" &
  hello_pid=$!
  PIDS+=("$hello_pid")
  SERVER_PID=$hello_pid
  wait_ready "http://127.0.0.1:$port/" "$hello_pid"
  bench hello "http://127.0.0.1:$port/" get.lua "$CONNS" "$THREADS"
  stop "$hello_pid"
fi

# sql BACKEND DATABASE_URL QUERY: runs QUERY (statements separated by ";") on the benchmark's
# database and prints the last one's rows, tab-separated.
sql() {
  local backend=$1 database_url=$2 query=$3
  if [[ $backend == sqlite ]]; then
    python3 - "${database_url#sqlite://}" "$query" <<'EOF'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=60)
statements = [s for s in sys.argv[2].split(";") if s.strip()]
for s in statements[:-1]:
    db.execute(s)
for row in db.execute(statements[-1]):
    print("\t".join(str(v) for v in row))
EOF
  else
    psql "$database_url" -qAt -F $'\t' -v ON_ERROR_STOP=1 -c "$query"
  fi
}

# vote_check BACKEND DATABASE_URL QUESTION ACKS OUT: every vote that vote.lua saw acknowledged on
# the question is in the database once, and the results page adds up (bench/check_votes.py).
# The users of the popular-poll load ("popular…") are not the benchmark's voters: their votes
# count like imported ones.
vote_check() {
  local backend=$1 database_url=$2 question=$3 acks=$4 out=$5
  log "$backend: vote check, poll $question"
  sql "$backend" "$database_url" "SELECT u.username, v.choice_id FROM votes v JOIN users u ON u.id = v.user_id
    WHERE v.question_id = $question AND u.username NOT LIKE 'popular%'" >"$WORK/$backend/rows.tsv"
  local others
  others=$(sql "$backend" "$database_url" "SELECT (SELECT COALESCE(SUM(base_votes), 0) FROM choices
    WHERE question_id = $question) + (SELECT COUNT(*) FROM votes v JOIN users u ON u.id = v.user_id
    WHERE v.question_id = $question AND u.username LIKE 'popular%')")
  python3 bench/check_votes.py "$acks" "$WORK/$backend/rows.tsv" "$others" "$BASE" \
    "$WORK/$backend/sessions.tsv" "$question" >"$out" || true
  cat "$out" >&2
}

# The popular poll's twin: a copy of poll 2 (same question, date and choices) that gets no
# votes, so that the popular poll's pages are compared with the same pages without votes on
# the same server, at the same moment, in alternating runs (this VM's speed drifts by 20% from
# one run to the next).
TWIN=902
twin_poll() {
  local backend=$1 database_url=$2
  sql "$backend" "$database_url" "INSERT INTO questions (id, question_text, pub_date)
      SELECT $TWIN, question_text, pub_date FROM questions WHERE id = 2;
    INSERT INTO choices (id, question_id, choice_text, position, base_votes)
      SELECT id + $TWIN * 10, $TWIN, choice_text, position, 0 FROM choices WHERE question_id = 2;
    SELECT COUNT(*) FROM choices WHERE question_id = $TWIN" >/dev/null
}

# The popular poll of several answers and its twin: copies of poll 2 that take up to two
# choices each (their choices' ids are the poll's id times ten plus poll 2's: 9035…9038 and
# 9045…9048).
SEVERAL=903
SEVERAL_TWIN=904
several_polls() {
  local backend=$1 database_url=$2 poll
  for poll in "$SEVERAL" "$SEVERAL_TWIN"; do
    sql "$backend" "$database_url" "INSERT INTO questions (id, question_text, pub_date, max_choices)
        SELECT $poll, question_text || ' (up to two)', pub_date, 2 FROM questions WHERE id = 2;
      INSERT INTO choices (id, question_id, choice_text, position, base_votes)
        SELECT id + $poll * 10, $poll, choice_text, position, 0 FROM choices WHERE question_id = 2;
      SELECT COUNT(*) FROM choices WHERE question_id = $poll" >/dev/null
  done
}

# load_popular BACKEND DATABASE_URL N: N users ("popular1"…) with one vote each on poll 2, spread
# over its four choices, and a selection each on the poll of several answers (one choice for
# odd users, two for even ones: 1.5 N rows, N voters), inserted straight into the database (one
# INSERT … SELECT for the users, one per poll and slot for the votes; the vote triggers keep the
# counts as the rows go in): the votes a viral poll collects, without N HTTP requests.
load_popular() {
  local backend=$1 database_url=$2 n=$3 first=100000000
  local several="INSERT INTO votes (user_id, question_id, slot, choice_id, voted_at)
      SELECT id, $SEVERAL, 0, $((SEVERAL * 10 + 5)) + id % 3, 0 FROM users WHERE id > $first;
    INSERT INTO votes (user_id, question_id, slot, choice_id, voted_at)
      SELECT id, $SEVERAL, 1, $((SEVERAL * 10 + 6)) + id % 3, 0 FROM users WHERE id > $first AND id % 2 = 0;"
  if [[ $backend == sqlite ]]; then
    sql "$backend" "$database_url" "BEGIN;
      WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < $n)
      INSERT INTO users (id, username, password, date_joined) SELECT $first + i, 'popular' || i, '!', 0 FROM s;
      INSERT INTO votes (user_id, question_id, choice_id, voted_at) SELECT id, 2, 5 + id % 4, 0 FROM users WHERE id > $first;
      $several
      COMMIT;
      SELECT COUNT(*) FROM votes WHERE question_id = 2"
  else
    sql "$backend" "$database_url" "INSERT INTO users (id, username, password, date_joined)
      SELECT $first + i, 'popular' || i, '!', 0 FROM generate_series(1, $n) i;
      INSERT INTO votes (user_id, question_id, choice_id, voted_at) SELECT id, 2, 5 + id % 4, 0 FROM users WHERE id > $first;
      $several
      SELECT COUNT(*) FROM votes WHERE question_id = 2" | tail -n 1
    # A viral poll's votes arrive over days, and autovacuum and the checkpointer have long since
    # dealt with them; loaded in one go, the vacuum of a million fresh rows and the writing of
    # their pages would run during the measurements. (CHECKPOINT needs a superuser or
    # pg_checkpoint; without, it is skipped.)
    psql "$database_url" -qAt -c "VACUUM (ANALYZE) users, votes, choice_counts"
    psql "$database_url" -qAt -c "CHECKPOINT" 2>/dev/null || true
  fi
}

# twin_rounds BACKEND TAG TWIN POLL: $ROUNDS times, the twin's page and results, then the
# poll's, each in turn (results pop0TAG_PAGE_ROUND and popNTAG_PAGE_ROUND; the report takes the
# median of the rounds).
twin_rounds() {
  local backend=$1 tag=$2 twin=$3 poll=$4 round page path
  local sessions=BENCH_SESSIONS=$WORK/$1/sessions.tsv
  for ((round = 1; round <= ROUNDS; round++)); do
    for page in detail results; do
      path=${page/detail/}
      path=${path:+$path/}
      bench "$backend.pop0${tag}_${page}_$round" "$BASE/polls/$twin/$path" session_get.lua \
        "$CONNS" "$THREADS" "$sessions" BENCH_EXPECT=200
      bench "$backend.popN${tag}_${page}_$round" "$BASE/polls/$poll/$path" session_get.lua \
        "$CONNS" "$THREADS" "$sessions" BENCH_EXPECT=200
    done
  done
}

# popular BACKEND DATABASE_URL: $POPULAR votes loaded on poll 2 (and selections on the poll of
# several answers); then, $ROUNDS times, its twin with no votes and poll 2, each page in turn
# (the report takes the median of the rounds), and the same for the poll of several answers;
# then votes from every connection on poll 2, and selections of two on the other (and their
# checks); then both closed (`closed`).
popular() {
  local backend=$1 database_url=$2 dir=$WORK/$1
  local sessions=BENCH_SESSIONS=$dir/sessions.tsv
  twin_poll "$backend" "$database_url"
  several_polls "$backend" "$database_url"
  log "$backend: loading $POPULAR votes on poll 2 straight into the database"
  local t0=$SECONDS loaded
  loaded=$(load_popular "$backend" "$database_url" "$POPULAR")
  echo "votes=$loaded seconds=$((SECONDS - t0))" >"$RES/$backend.pop_load"
  cat "$RES/$backend.pop_load" >&2
  sleep 1.5 # what the server keeps in memory of poll 2 has expired
  twin_rounds "$backend" "" "$TWIN" 2
  twin_rounds "$backend" m "$SEVERAL_TWIN" "$SEVERAL"
  bench "$backend.popN_votes" "$BASE/polls/2/vote/" vote.lua "$CONNS" "$THREADS" "$sessions" \
    BENCH_EXPECT=303 BENCH_CHOICES=5,6,7,8 BENCH_ACKS="$dir/acks2.tsv"
  vote_check "$backend" "$database_url" 2 "$dir/acks2.tsv" "$RES/$backend.pop_votecheck"
  local c=$((SEVERAL * 10))
  bench "$backend.popNm_votes" "$BASE/polls/$SEVERAL/vote/" vote.lua "$CONNS" "$THREADS" "$sessions" \
    BENCH_EXPECT=303 BENCH_CHOICES=$((c + 5)),$((c + 6)),$((c + 7)),$((c + 8)) BENCH_PICK=2 \
    BENCH_ACKS="$dir/acks_several.tsv"
  vote_check "$backend" "$database_url" "$SEVERAL" "$dir/acks_several.tsv" "$RES/$backend.popm_votecheck"
  closed "$backend" "$database_url"
}

# closed BACKEND DATABASE_URL: poll 2 and its twin close (their closing time passes); the first
# read of each records the close and seals it (its audit file of every vote), timed; then, $ROUNDS
# times, the closed twin's pages and the closed poll 2's (its final results).
closed() {
  local backend=$1 database_url=$2
  local cookie
  cookie=$(head -n 1 "$WORK/$backend/sessions.tsv" | cut -f2)
  sql "$backend" "$database_url" "UPDATE questions SET closes_at = $(($(date +%s) - 1))
    WHERE id IN (2, $TWIN); SELECT COUNT(*) FROM questions WHERE closes_at IS NOT NULL" >/dev/null
  sleep 1.5 # the server's copy of each poll (kept a second) has expired: it sees the closing time
  local poll
  for poll in "$TWIN" 2; do
    curl -fsS -o /dev/null -b "pollstr_session=$cookie" -w "poll=$poll close_and_seal_s=%{time_total}\n" \
      "$BASE/polls/$poll/results/" >>"$RES/$backend.pop_seal"
  done
  cat "$RES/$backend.pop_seal" >&2
  sleep 1.5 # what the server keeps in memory of both polls has expired
  twin_rounds "$backend" c "$TWIN" 2
}

# scrape BACKEND: GETs $METRICS_URL once a second until killed, as a Prometheus server would;
# counts the scrapes in $RES/BACKEND.scrapes (a failed scrape ends the run's scraping loudly).
scrape() {
  local n=0
  while sleep 1; do
    curl -fsS -o /dev/null --max-time 5 "$METRICS_URL" || { echo "scrape of $METRICS_URL failed" >&2; return 1; }
    n=$((n + 1))
    echo "$n" >"$RES/$1.scrapes"
  done
}

# --- Pollstr on one backend ----------------------------------------------------------------------
# start_server DIR LOG [VAR=VALUE...]: `pollstr serve` on $port and $database_url, in a clean
# environment (nothing from this shell or a .env leaks in), run from DIR (empty); sets SERVER_PID.
start_server() {
  local dir=$1 serverlog=$2
  shift 2
  (cd "$dir" && exec env -i PATH="$PATH" \
    POLLSTR_ADDR="127.0.0.1:$port" \
    DATABASE_URL="$database_url" \
    POLLSTR_SEED_DEMO=true \
    VERIFY_BACKEND=console \
    SMS_LIMIT_PER_USER=100000/1h SMS_LIMIT_PER_NUMBER=100000/1h SMS_LIMIT_PER_IP=100000/1h \
    SMS_LIMIT_PER_COUNTRY=100000/1h SMS_LIMIT_PER_PREFIX=100000/1h \
    SIGNUP_LIMIT_PER_IP=100000/1h \
    "$@" "$BIN" serve) 2>"$serverlog" &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
}

# run_pollstr BACKEND DATABASE_URL
run_pollstr() {
  local backend=$1 database_url=$2
  local dir=$WORK/$backend
  mkdir -p "$dir"
  port=$(free_port)
  BASE=http://127.0.0.1:$port

  log "$backend: pollstr serve on $BASE"
  # wrk, one address, stands for many visitors: no per-address connection limit.
  local with_metrics=() mport
  if [[ $METRICS == 1 ]]; then
    mport=$(free_port)
    METRICS_URL=http://127.0.0.1:$mport/metrics
    with_metrics=(METRICS_ADDR="127.0.0.1:$mport")
  fi
  start_server "$dir" "$dir/server.log" HTTP_MAX_CONNECTIONS_PER_IP=1000000 "${with_metrics[@]}"
  local pid=$SERVER_PID
  wait_ready "$BASE/healthz" "$pid" || { cat "$dir/server.log" >&2; return 1; }
  local scraper=
  if [[ $METRICS == 1 ]]; then
    scrape "$backend" &
    scraper=$!
    PIDS+=("$scraper")
  fi

  log "$backend: $USERS users, each registered and verified through /register/ and /2fa/"
  local choices
  choices=$(python3 bench/setup.py users "$BASE" "$dir/server.log" "$USERS" "$dir/sessions.tsv")
  if [[ $ONLY == popular ]]; then
    hwm "$pid" >"$RES/$backend.rss_setup_kb"
    popular "$backend" "$database_url"
    hwm "$pid" >"$RES/$backend.rss_kb"
    stop "$pid"
    return
  fi
  if [[ $ONLY == votes ]]; then
    bench "$backend.votes" "$BASE/polls/1/vote/" vote.lua "$CONNS" "$THREADS" \
      BENCH_SESSIONS="$dir/sessions.tsv" BENCH_EXPECT=303 BENCH_CHOICES="$choices" \
      BENCH_ACKS="$dir/acks.tsv"
    vote_check "$backend" "$database_url" 1 "$dir/acks.tsv" "$RES/$backend.votecheck"
    stop "$pid"
    return
  fi
  if [[ $ONLY == pages ]]; then
    bench "$backend.detail" "$BASE/polls/1/" session_get.lua "$CONNS" "$THREADS" \
      BENCH_SESSIONS="$dir/sessions.tsv" BENCH_EXPECT=200
    bench "$backend.results" "$BASE/polls/1/results/" session_get.lua "$CONNS" "$THREADS" \
      BENCH_SESSIONS="$dir/sessions.tsv" BENCH_EXPECT=200
    if [[ -n $scraper ]]; then
      kill "$scraper" 2>/dev/null || true
      log "$backend: $(cat "$RES/$backend.scrapes" 2>/dev/null || echo 0) metrics scrapes during the run"
    fi
    stop "$pid"
    return
  fi
  log "$backend: $LOGIN_PAIRS fresh login sessions, twice"
  python3 bench/setup.py login-pairs "$BASE" "$dir/sessions.tsv" "$LOGIN_PAIRS" "$dir/pairs1.tsv"
  python3 bench/setup.py login-pairs "$BASE" "$dir/sessions.tsv" "$LOGIN_PAIRS" "$dir/pairs2.tsv"

  # Peak memory after the setup (its registrations hash passwords), and at the end of the run.
  hwm "$pid" >"$RES/$backend.rss_setup_kb"
  if [[ $ONLY == storm ]]; then
    storm "$backend" "$dir"
    hwm "$pid" >"$RES/$backend.rss_kb"
    stop "$pid"
    return
  fi

  bench "$backend.list" "$BASE/polls/" get.lua "$CONNS" "$THREADS"
  bench "$backend.detail" "$BASE/polls/1/" session_get.lua "$CONNS" "$THREADS" \
    BENCH_SESSIONS="$dir/sessions.tsv" BENCH_EXPECT=200
  bench "$backend.results" "$BASE/polls/1/results/" session_get.lua "$CONNS" "$THREADS" \
    BENCH_SESSIONS="$dir/sessions.tsv" BENCH_EXPECT=200
  bench "$backend.votes" "$BASE/polls/1/vote/" vote.lua "$CONNS" "$THREADS" \
    BENCH_SESSIONS="$dir/sessions.tsv" BENCH_EXPECT=303 BENCH_CHOICES="$choices" \
    BENCH_ACKS="$dir/acks.tsv"

  vote_check "$backend" "$database_url" 1 "$dir/acks.tsv" "$RES/$backend.votecheck"

  bench "$backend.logins" "$BASE/login/" login.lua "$LOGIN_CONNS" "$THREADS" \
    BENCH_PAIRS="$dir/pairs1.tsv" BENCH_EXPECT=303

  storm "$backend" "$dir"

  if ((POPULAR > 0)); then
    popular "$backend" "$database_url"
  fi

  hwm "$pid" >"$RES/$backend.rss_kb"
  awk '/^VmRSS/ {print $2}' "/proc/$pid/status" >"$RES/$backend.rss_end_kb"
  stop "$pid"
}

# Page views while $STORM_CONNS logins run at once: two generators side by side, one thread
# each; logins past the hash queue are answered 429 at once (counted as turned away). Meanwhile
# another user logs in one login at a time (bench/setup.py probe-logins): how long an admitted
# login waits behind the storm.
storm() {
  local backend=$1 dir=$2
  log "$backend: storm: $STORM_CONNS concurrent logins, GET /polls/ and another user's logins at once"
  bench "$backend.storm_logins" "$BASE/login/" login.lua "$STORM_CONNS" 1 \
    BENCH_PAIRS="$dir/pairs2.tsv" BENCH_EXPECT=303 BENCH_TURN_AWAY=1 &
  local storm=$!
  sleep 0.5 # the storm is on before the page views start, and outlasts them
  local short=$((DURATION > 1 ? DURATION - 1 : DURATION))
  python3 bench/setup.py probe-logins "$BASE" "$dir/sessions.tsv" "$short" "$RES/$backend.storm_probe" &
  local probe=$!
  DURATION=$short bench "$backend.storm_list" "$BASE/polls/" get.lua "$CONNS" 1
  wait "$probe"
  wait "$storm"
}

# The attacks of issue 23, each from one client address, on a server with the default HTTP
# limits (on the database of the run above, or a fresh one): meanwhile a visitor loads the poll
# list on fresh connections (bench/attack.py probe) and a user logs in, one login at a time
# (attack.py logins). "quiet" is the same without an attack.
attacks() {
  local backend=$1 database_url=$2 dir=$WORK/$1
  mkdir -p "$dir"
  port=$(free_port)
  BASE=http://127.0.0.1:$port
  log "$backend: attacks: pollstr serve on $BASE, default HTTP limits"
  start_server "$dir" "$dir/attacks-server.log"
  local pid=$SERVER_PID
  wait_ready "$BASE/healthz" "$pid" || { cat "$dir/attacks-server.log" >&2; return 1; }
  if [[ ! -s $dir/sessions.tsv ]]; then
    python3 bench/setup.py users "$BASE" "$dir/attacks-server.log" 2 "$dir/sessions.tsv" >/dev/null
  fi
  local name from attacker
  for name in quiet pipeline slowloris signup; do
    from=127.0.0.2
    attacker=
    if [[ $name != quiet ]]; then
      log "$backend: attack $name from $from, ${DURATION}s of measurements"
      python3 bench/attack.py "$name" "$BASE" "$from" "$((DURATION + 3))" \
        "$RES/$backend.attack_${name}_attacker" &
      attacker=$!
      sleep 3 # the attack reaches its full strength
    fi
    python3 bench/attack.py probe "$BASE" "$DURATION" "$RES/$backend.attack_${name}" &
    local probe=$!
    python3 bench/attack.py logins "$BASE" "$dir/sessions.tsv" "$DURATION" \
      "$RES/$backend.attack_${name}_logins"
    wait "$probe"
    if [[ -n $attacker ]]; then wait "$attacker"; fi
    sleep 2 # the attack's sockets are closed, its work finished
  done
  hwm "$pid" >"$RES/$backend.attack_rss_kb"
  stop "$pid"
}

# run_backend BACKEND DATABASE_URL: the scenarios BENCH_ONLY selects.
run_backend() {
  if [[ $ONLY != attacks ]]; then
    run_pollstr "$1" "$2"
  fi
  if [[ -z $ONLY || $ONLY == attacks ]]; then
    mkdir -p "$WORK/$1"
    attacks "$1" "$2"
  fi
}

run_backend sqlite "sqlite://$WORK/sqlite/pollstr.db"

if [[ -n $PG_SERVER ]]; then
  PG_DB=pollstr_bench_$(date +%s)_$$
  log "postgres: CREATE DATABASE $PG_DB"
  psql "$PG_SERVER" -qAt -c "CREATE DATABASE $PG_DB" >/dev/null
  # The server's URL with the database name replaced.
  pg_url=$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$PG_SERVER" "$PG_DB")
  run_backend postgres "$pg_url"
fi

echo "loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$RES/meta"
python3 bench/report.py "$RES" "$OUT"
log "results written to $OUT ($SECONDS s in all)"
