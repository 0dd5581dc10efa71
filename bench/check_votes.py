#!/usr/bin/env python3
"""The vote check of bench/run.sh: every acknowledged vote is in the database, none twice.

    check_votes.py ACKS ROWS BASE_VOTES BASE_URL SESSIONS [QUESTION]

ACKS      written by bench/wrk/vote.lua: username, votes sent, last acknowledged vote, and the
          choices from the last acknowledged vote to the last sent one (tab-separated)
ROWS      the benchmark users' votes on the poll after the run: username, choice id (tab-separated)
BASE_VOTES  the poll's other votes (imported with its choices, or loaded as other users' rows)
BASE_URL, SESSIONS  Pollstr and the verified sessions: the first one reads the results page
QUESTION  the poll (default 1)

A re-vote replaces the user's vote, so the table must hold exactly one vote per user who voted,
holding the choice of that user's last acknowledged vote, or of a later vote that was still
unanswered when wrk stopped (the server may have applied it). On a poll of several answers
(vote.lua's BENCH_PICK) a vote is the user's rows, read as their choice ids in ascending order
joined by "+", and each row is one count on the results page. Prints one line of key=value
pairs, starting with vote_check=PASS or vote_check=FAIL; exits 1 on FAIL.
"""

import http.client
import re
import sys
import urllib.parse

COUNT_RE = re.compile(r'class="count">\s*(\d+) votes?')


def read_tsv(path):
    with open(path) as f:
        return [line.rstrip("\n").split("\t") for line in f if line.strip()]


def results_page_total(base, cookie, question):
    url = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    conn.request("GET", f"/polls/{question}/results/",
                 headers={"Cookie": f"pollstr_session={cookie}"})
    res = conn.getresponse()
    page = res.read().decode("utf-8", "replace")
    counts = COUNT_RE.findall(page)
    if res.status != 200 or not counts:
        return None
    return sum(int(c) for c in counts)


def main(acks_path, rows_path, base_votes, base_url, sessions_path, question="1"):
    acks = {}
    for name, sent, acked, allowed in read_tsv(acks_path):
        acks[name] = (int(sent), int(acked), allowed.split(","))
    rows = read_tsv(rows_path)
    picked = {}
    for name, choice in rows:
        picked.setdefault(name, []).append(int(choice))
    size = max((len(a.split("+")) for _, _, allowed in acks.values() for a in allowed), default=1)
    # More rows than a vote has, or a choice twice: a vote written twice.
    doubled = sum(1 for p in picked.values() if len(p) > size or len(set(p)) < len(p))
    stored = {name: "+".join(str(c) for c in sorted(p)) for name, p in picked.items()}

    acked_voters = [n for n, (_, a, _) in acks.items() if a > 0]
    lost = [n for n in acked_voters if n not in stored]
    exact = later = 0
    wrong = []
    for name, choice in stored.items():
        if name not in acks:
            wrong.append(name)  # a row for a user who never voted
            continue
        sent, acked, allowed = acks[name]
        if acked > 0 and choice == allowed[0]:
            exact += 1
        elif choice in allowed:
            later += 1  # a vote unanswered at stop, applied by the server
        else:
            wrong.append(name)

    cookie = read_tsv(sessions_path)[0][1]
    page_total = results_page_total(base_url, cookie, question)
    expected_total = int(base_votes) + len(rows)

    ok = doubled == 0 and not lost and not wrong and page_total == expected_total
    print(
        f"vote_check={'PASS' if ok else 'FAIL'} rows={len(rows)} distinct_users={len(stored)} "
        f"acked_voters={len(acked_voters)} lost={len(lost)} doubled={doubled} "
        f"last_acked_choice={exact} later_unanswered_choice={later} wrong_choice={len(wrong)} "
        f"page_total={page_total} expected_page_total={expected_total}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) not in (6, 7):
        raise SystemExit(__doc__)
    sys.exit(main(*sys.argv[1:]))
