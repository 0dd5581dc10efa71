#!/usr/bin/env python3
"""Writes the results of bench/run.sh into BENCHMARKS.md.

    report.py RESULTS_DIR BENCHMARKS.md

RESULTS_DIR holds `meta` (key=value lines), one summary line per wrk run (`hello`,
`<backend>.<scenario>`, written by bench/wrk/common.lua), and per backend `votecheck` and
`rss_kb`, `rss_setup_kb`, `rss_end_kb`.
The table replaces what lies between the two `bench:results` markers of the file; everything
else in the file (notes, profile, changes) is kept. A missing file gets the markers appended.
"""

import os
import sys

BEGIN = "<!-- bench:results:begin (written by bench/run.sh; edit outside these markers) -->"
END = "<!-- bench:results:end -->"

DJANGO_RPS = 320  # the Django original's poll list: gunicorn, 2 workers
RSS_TARGET_MB = 64

# name, what, share-of-hello target (fraction), p99 target (ms), other target text
SCENARIOS = [
    ("list", "1. poll list `GET /polls/` (anonymous)", 0.50, 10, None),
    ("detail", "2. poll page `GET /polls/1/` (verified session)", 0.35, 10, None),
    ("results", "3. results `GET /polls/1/results/` (verified session)", None, 10, None),
    ("votes", "4. votes `POST /polls/1/vote/` (many verified users)", None, 10, "votes"),
    ("logins", "5. logins `POST /login/` (correct password, fresh session each)", None, None, None),
    ("storm_list", "6. poll list during a storm of {storm} concurrent logins", None, 25, None),
    ("storm_logins", "6. ... the storm's logins", None, None, None),
]


def parse_kv(text):
    out = {}
    for part in text.split():
        if "=" in part:
            k, v = part.split("=", 1)
            out[k] = v
    return out


def read(res, name):
    path = os.path.join(res, name)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return f.read().strip()


def errors(r):
    sockets = sum(int(r[k]) for k in ("connect", "read", "write", "timeout"))
    # A login the hash queue turned away (429, "try again in a moment") is an answer, not an error.
    away = int(r.get("turned_away", 0))
    statuses = max(int(r["non2xx3xx"]) - away, int(r["unexpected_status"]))
    return sockets + statuses, sockets, statuses


def cpu(r, shared=False):
    """Server CPU per request (µs) and cores used by the server and by wrk during the run."""
    if "server_cpu_s" not in r:
        return "—", "—"
    secs = float(r["seconds"])
    server, wrk = float(r["server_cpu_s"]), float(r["wrk_cpu_s"])
    per_req = "—" if shared else f"{server * 1e6 / max(int(r['requests']), 1):,.0f}"
    return per_req, f"{server / secs:.2f} + {wrk / secs:.2f}"


def megabytes(kb):
    return int(kb) / 1024 if kb else None


def show_mb(v):
    return f"{v:.1f} MB" if v is not None else "?"


def verdict(ok):
    return "yes" if ok else "**no**"


# The popular poll (poll 2): p99 target (ms) of its pages, and the votes/s target, per backend.
POPULAR_TARGETS = {"sqlite": (10, 5000), "postgres": (30, 3000)}


def median_run(res, name):
    """The median of a popular-poll page's rounds (`NAME_1`, `NAME_2`, …): requests/s and p99 each
    the median of the rounds', errors summed; with the rounds' req/s. A run without rounds (an
    older run.sh) is its own single round."""
    runs = []
    k = 1
    while (line := read(res, f"{name}_{k}")) is not None:
        runs.append(parse_kv(line))
        k += 1
    if not runs and (line := read(res, name)) is not None:
        runs.append(parse_kv(line))
    if not runs:
        return None, []

    def median(key):
        values = sorted(float(r[key]) for r in runs)
        mid = len(values) // 2
        return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2

    merged = dict(runs[0])
    merged["rps"], merged["p99_ms"] = median("rps"), median("p99_ms")
    for key in ("connect", "read", "write", "timeout", "non2xx3xx", "unexpected_status"):
        merged[key] = sum(int(r[key]) for r in runs)
    return merged, [float(r["rps"]) for r in runs]


def popular_table(res, settings):
    """Poll 2 with BENCH_POPULAR_VOTES votes against its twin with none (run.sh `twin_poll`), in
    alternating runs; each figure the median of the rounds."""
    backends = [b for b in ("sqlite", "postgres")
                if median_run(res, f"{b}.popN_detail")[0] is not None]
    if not backends:
        return []
    n = int(settings.get("popular_votes", "0"))
    rounds = settings.get("popular_rounds", "1")
    lines = ["", f"**A popular poll**: poll 2 with {n:,} votes loaded straight into the database "
             "(`load_popular` in bench/run.sh), against its twin with no votes (a copy of poll 2 "
             f"made by `twin_poll`), read by the same verified users in alternating runs, {rounds} "
             "rounds, each figure the median of the rounds; the same for poll 903, which takes up "
             f"to two answers ({n:,} voters, 1.5 rows each on average), against its own twin; then "
             "every connection votes on each; then poll 2 and its twin close.",
             "",
             "| scenario | backend | no votes: req/s | p99 | "
             f"{n:,} votes: req/s | p99 | ratio | target | met |",
             "|---|---|---:|---:|---:|---:|---:|---|---|"]
    w = lines.append
    notes = []
    for backend in backends:
        p99_target, votes_target = POPULAR_TARGETS[backend]
        for name, what in (("_detail", "poll page `GET /polls/2/`"),
                           ("_results", "results `GET /polls/2/results/`"),
                           ("m_detail", "up to two answers: poll page"),
                           ("m_results", "up to two answers: results"),
                           ("c_detail", "closed: poll page (final results)"),
                           ("c_results", "closed: results")):
            e, e_rounds = median_run(res, f"{backend}.pop0{name}")
            f, f_rounds = median_run(res, f"{backend}.popN{name}")
            if not (e and f):
                continue
            ratio = float(f["rps"]) / float(e["rps"])
            ok = (ratio >= 0.9 and float(f["p99_ms"]) <= p99_target
                  and errors(e)[0] == 0 and errors(f)[0] == 0)
            w(f"| {what} | {backend} | {float(e['rps']):,.0f} | {float(e['p99_ms']):.2f} | "
              f"{float(f['rps']):,.0f} | {float(f['p99_ms']):.2f} | {ratio:.0%} | "
              f"≥ 90%; p99 ≤ {p99_target} ms | {verdict(ok)} |")
            pairs = ", ".join(f"{a:,.0f} / {b:,.0f}" for a, b in zip(e_rounds, f_rounds))
            notes.append(f"- {backend}, {name.lstrip('_')}: each round's req/s, no votes / popular: "
                         f"{pairs}.")
        for name, check_name, what in (
                ("popN_votes", "pop_votecheck", "votes `POST /polls/2/vote/`"),
                ("popNm_votes", "popm_votecheck", "votes of two answers `POST /polls/903/vote/`")):
            votes = read(res, f"{backend}.{name}")
            if not votes:
                continue
            v = parse_kv(votes)
            check = parse_kv(read(res, f"{backend}.{check_name}") or "")
            ok = (float(v["rps"]) >= votes_target and float(v["p99_ms"]) <= 30
                  and errors(v)[0] == 0 and check.get("vote_check") == "PASS")
            w(f"| {what} | {backend} | — | — | {float(v['rps']):,.0f} | "
              f"{float(v['p99_ms']):.2f} | — | ≥ {votes_target:,}/s; p99 ≤ 30 ms; 0 lost or doubled "
              f"| {verdict(ok)} |")
    lines.append("")
    lines.extend(notes)
    for backend in backends:
        load = parse_kv(read(res, f"{backend}.pop_load") or "")
        check = read(res, f"{backend}.pop_votecheck") or "vote_check=MISSING"
        w("")
        w(f"- **{backend}**: {int(load.get('votes', '0')):,} votes on poll 2 after the load "
          f"({load.get('seconds', '?')} s to load, with 1.5 rows per voter on poll 903 of up to "
          f"two answers). Vote check: `{check}`.")
        several = read(res, f"{backend}.popm_votecheck")
        if several:
            w(f"- **{backend}**: vote check of the selections of two on poll 903: `{several}`.")
        seal = read(res, f"{backend}.pop_seal")
        if seal:
            w(f"- **{backend}**: the close of each poll (its first read after its closing time "
              f"records it and seals its audit file): `{' '.join(seal.split())}`.")
    return lines


# The attacks of issue 23 (bench/run.sh `attacks`, bench/attack.py), each from one client
# address on loopback, against the default HTTP limits.
ATTACKS = [
    ("quiet", "no attack (the baseline)"),
    ("pipeline", "1. 200 sockets pipelining a static file, never reading"),
    ("slowloris", "2. slowloris: 100 new half-sent heads a second"),
    ("signup", "3. sign-up flood on `POST /register/` (48 threads)"),
]
ATTACK_P99_MS = 100


def attacks_table(res):
    """During each attack: the share of a visitor's poll-list requests answered (each on a fresh
    connection) and their p99, and a user's logins admitted and their p99."""
    backends = [b for b in ("sqlite", "postgres") if read(res, f"{b}.attack_quiet")]
    if not backends:
        return []
    lines = ["", "**Attacks** (issue 23; `BENCH_ONLY=attacks`): each from one client address on "
             "this machine, against the default HTTP limits, while a visitor loads the poll list "
             "(20 requests a second, each on a fresh connection) and a user logs in, one login at "
             "a time. Target: every request answered, the poll list's p99 under "
             f"{ATTACK_P99_MS} ms.",
             "",
             "| attack | backend | poll list answered | p99 | logins admitted | login p99 "
             "| the attacker | met |",
             "|---|---|---:|---:|---:|---:|---|---|"]
    w = lines.append
    for backend in backends:
        for name, what in ATTACKS:
            line = read(res, f"{backend}.attack_{name}")
            if not line:
                continue
            p = parse_kv(line)
            lg = parse_kv(read(res, f"{backend}.attack_{name}_logins") or "")
            attacker = read(res, f"{backend}.attack_{name}_attacker") or "—"
            asked, answered = int(p["requests"]), int(p["answered"])
            tried, admitted = int(lg.get("attempts", 0)), int(lg.get("admitted", 0))
            ok = (asked > 0 and answered == asked and float(p["p99_ms"]) < ATTACK_P99_MS
                  and tried > 0 and admitted == tried)
            w(f"| {what} | {backend} | {answered}/{asked} ({answered / max(asked, 1):.0%}) | "
              f"{float(p['p99_ms']):.1f} | {admitted}/{tried} ({admitted / max(tried, 1):.0%}) | "
              f"{float(lg.get('p99_ms', 0)):.0f} | `{attacker}` | {verdict(ok)} |")
    return lines


def table(res, meta):
    hello_line = read(res, "hello")
    hello = parse_kv(hello_line) if hello_line else None
    hello_rps = float(hello["rps"]) if hello else None
    settings = parse_kv(meta.get("settings", ""))
    storm = settings.get("storm_conns", "50")
    backends = [b for b in ("sqlite", "postgres")
                if read(res, f"{b}.list") or read(res, f"{b}.storm_logins")]

    lines = []
    w = lines.append
    w(f"Run of {meta.get('date', '?')} on {meta.get('cores', '?')} cores "
      f"({meta.get('cpu', '?')}), {meta.get('memory', '?')} memory, {meta.get('kernel', '?')}; "
      f"load average {meta.get('loadavg_start', '?')} at the start, "
      f"{meta.get('loadavg_end', '?')} at the end. Commit {meta.get('commit', '?')}, "
      f"{meta.get('rustc', '?')}, {meta.get('wrk', '?')}.")
    w("")
    w(f"Settings: {settings.get('duration', '?')} s per scenario, "
      f"{settings.get('conns', '?')} connections (logins {settings.get('login_conns', '?')}, "
      f"storm {storm} logins + {settings.get('conns', '?')} page-view connections), "
      f"wrk -t{settings.get('threads', '?')} (the storm: two wrk processes, -t1 each), "
      f"{settings.get('users', '?')} verified users. Latencies in ms; errors = socket errors + "
      f"answers outside 2xx/3xx or, where checked, other than the expected status. The last two "
      f"columns: the server's CPU time per request, and the cores the server and wrk kept busy "
      f"(during the storm the server's time is shared by both generators).")
    w("")
    if not (hello or backends):
        lines = lines[:1]  # a partial run (BENCH_ONLY=attacks): no throughput scenarios
        lines.extend(popular_table(res, settings))
        lines.extend(attacks_table(res))
        return "\n".join(lines)
    w("| scenario | backend | conns | req/s | p50 | p99 | errors | vs hello | target | met "
      "| server CPU µs/req | cores: server + wrk |")
    w("|---|---|---:|---:|---:|---:|---:|---:|---|---|---:|---:|")
    if hello:
        e, _, _ = errors(hello)
        per_req, cores = cpu(hello)
        w(f"| ceiling: `examples/hello.rs` (bare axum, fixed page) | — | {settings.get('conns', '?')} "
          f"| {float(hello['rps']):,.0f} | {float(hello['p50_ms']):.2f} | "
          f"{float(hello['p99_ms']):.2f} | {e} | 100% | — | — | {per_req} | {cores} |")
    summary = []
    for backend in backends:
        for name, what, share, p99_target, other in SCENARIOS:
            line = read(res, f"{backend}.{name}")
            if not line:
                continue
            r = parse_kv(line)
            rps, p50, p99 = float(r["rps"]), float(r["p50_ms"]), float(r["p99_ms"])
            e, _, _ = errors(r)
            conns = {"logins": settings.get("login_conns"), "storm_logins": storm}.get(
                name, settings.get("conns"))
            ratio = rps / hello_rps if hello_rps and name in ("list", "detail", "results") else None
            targets, ok = [], e == 0
            if share is not None:
                targets.append(f"≥ {share:.0%} of hello")
                ok = ok and ratio is not None and ratio >= share
            if p99_target is not None:
                targets.append(f"p99 < {p99_target} ms")
                ok = ok and p99 < p99_target
            if other == "votes":
                check = parse_kv(read(res, f"{backend}.votecheck") or "")
                passed = check.get("vote_check") == "PASS"
                if backend == "sqlite":
                    targets.append("≥ 5,000/s")
                    ok = ok and rps >= 5000
                targets.append("0 lost or doubled")
                ok = ok and passed
            note = ""
            if int(r.get("turned_away", 0)):
                admitted = int(r["requests"]) - int(r["turned_away"])
                note = (f" ({admitted / float(r['seconds']):,.0f}/s admitted; "
                        f"{int(r['turned_away']):,} turned away at once with 429)")
            if r.get("pairs_exhausted") == "1":
                note = " (ran out of login sessions: raise BENCH_LOGIN_PAIRS)"
            target = "; ".join(targets) if targets else "— (reported)"
            met = verdict(ok) if targets else ("—" if e == 0 else "**errors**")
            per_req, cores = cpu(r, shared=name.startswith("storm"))
            w(f"| {what.format(storm=storm)}{note} | {backend} | {conns} | {rps:,.0f} | {p50:.2f} | "
              f"{p99:.2f} | {e} | {f'{ratio:.0%}' if ratio is not None else '—'} | {target} | {met} "
              f"| {per_req} | {cores} |")
        probe = parse_kv(read(res, f"{backend}.storm_probe") or "")
        if probe:
            w(f"| 6. ... another user's logins, one at a time ({probe['admitted']} admitted, "
              f"{probe['turned_away']} turned away) | {backend} | 1 | — | {float(probe['p50_ms']):.2f} | "
              f"{float(probe['p99_ms']):.2f} | {probe['other']} | — | wait of an admitted login "
              f"(max {float(probe['max_ms']):,.0f} ms) ≤ 2,000 ms | "
              f"{verdict(float(probe['max_ms']) <= 2000 and probe['other'] == '0')} | — | — |")
        if not read(res, f"{backend}.list"):
            continue  # a partial run (BENCH_ONLY=storm)
        lst = parse_kv(read(res, f"{backend}.list"))
        django = float(lst["rps"]) / DJANGO_RPS
        rss_mb, setup_mb, end_mb = (
            megabytes(read(res, f"{backend}.{name}"))
            for name in ("rss_kb", "rss_setup_kb", "rss_end_kb"))
        check = read(res, f"{backend}.votecheck") or "vote_check=MISSING"
        summary.append(
            f"- **{backend}**: poll list vs the Django original ({DJANGO_RPS} req/s): "
            f"**{django:,.0f}×** (target > 100×: {verdict(django > 100)}). "
            f"Peak RSS (VmHWM) over the whole run: **{show_mb(rss_mb)}** "
            f"(target ≤ {RSS_TARGET_MB} MB: {verdict(rss_mb is not None and rss_mb <= RSS_TARGET_MB)}); "
            f"{show_mb(setup_mb)} already after the setup (registrations), {show_mb(end_mb)} "
            f"resident at the end. "
            f"Vote check: `{check}`.")
    w("")
    lines.extend(summary)
    lines.extend(popular_table(res, settings))
    lines.extend(attacks_table(res))
    return "\n".join(lines)


SKELETON = """# Benchmarks

`bash bench/run.sh` (add `--postgres`, or set `TEST_DATABASE_URL`, to also run on PostgreSQL)
writes the section below. How the harness works is described in `bench/run.sh`.

## Latest results

{begin}
{end}
"""


def main(res, out):
    meta = {}
    for line in (read(res, "meta") or "").splitlines():
        if line.startswith("duration="):
            meta["settings"] = line
        elif "=" in line:
            k, v = line.split("=", 1)
            meta[k] = v
    body = table(res, meta)
    text = open(out).read() if os.path.exists(out) else SKELETON.format(begin=BEGIN, end=END)
    if BEGIN not in text or END not in text:
        text = text.rstrip("\n") + "\n\n" + BEGIN + "\n" + END + "\n"
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    with open(out, "w") as f:
        f.write(head + BEGIN + "\n" + body + "\n" + END + tail)
    print(body)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2])
