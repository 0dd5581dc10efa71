#!/usr/bin/env python3
"""Benchmark setup for bench/run.sh, through Pollstr's real HTTP flow (standard library only).

    setup.py users BASE_URL SERVER_LOG COUNT OUT_FILE
        registers COUNT users (bench0000, bench0001, ...), verifies a distinct phone number for
        each (+44 7400 1xxxxx; the console provider's code is read from the server's log), and
        writes one line per verified session: username, cookie, csrf token (tab-separated).
        Prints the choice ids of poll 1 (comma-separated) on stdout.

    setup.py login-pairs BASE_URL USERS_FILE COUNT OUT_FILE
        opens COUNT fresh anonymous visits (GET /login/) and writes, per line, a ready login
        body for one bench user (correct password) and that visitor's Cookie header (its CSRF
        cookie; tab-separated). Each pair is used for one login.

    setup.py probe-logins BASE_URL USERS_FILE SECONDS OUT_FILE
        for SECONDS, logs in as the last bench user again and again, one login at a time (another
        user during the storm), and writes how long each admitted login (303) took and how many
        were turned away (429) as one key=value line.
"""

import concurrent.futures
import http.client
import re
import sys
import threading
import time
import urllib.parse

COOKIE = "pollstr_session"
PASSWORD = "quiet-harbor-Bench-41"
CSRF_RE = re.compile(r'name="csrf_token"\s+value="([^"]+)"')
CHOICE_RE = re.compile(r'name="choice"[^>]*\svalue="(\d+)"')
CODE_RE = re.compile(r"code for (.+?) is (\d{6})")
ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")


class Client:
    """One browser: one connection, its cookies, no redirects followed."""

    def __init__(self, base):
        url = urllib.parse.urlsplit(base)
        self.conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
        self.cookies = {}

    @property
    def cookie(self):
        """The session cookie's value."""
        return self.cookies.get(COOKIE)

    def cookie_header(self):
        return "; ".join(f"{k}={v}" for k, v in self.cookies.items())

    def request(self, method, path, form=None, expect=(200,)):
        headers = {}
        body = None
        if self.cookies:
            headers["Cookie"] = self.cookie_header()
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        self.conn.request(method, path, body=body, headers=headers)
        res = self.conn.getresponse()
        text = res.read().decode("utf-8", "replace")
        for name, value in res.getheaders():
            if name.lower() == "set-cookie":
                key, _, val = value.split(";", 1)[0].partition("=")
                self.cookies[key.strip()] = val
        if res.status not in expect:
            raise RuntimeError(f"{method} {path}: HTTP {res.status}, expected {expect}")
        return res.status, res.getheader("Location"), text

    def csrf(self, path):
        _, _, text = self.request("GET", path)
        m = CSRF_RE.search(text)
        if not m:
            raise RuntimeError(f"GET {path}: no csrf_token in the page")
        return m.group(1), text


class CodeLog:
    """The console provider's codes, read from the server's log as they appear."""

    def __init__(self, path):
        self.path = path
        self.codes = {}  # masked number -> latest code
        self.offset = 0
        self.lock = threading.Lock()

    def wait(self, masked_suffix, timeout=15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                with open(self.path, "rb") as f:
                    f.seek(self.offset)
                    chunk = f.read()
                end = chunk.rfind(b"\n") + 1
                self.offset += end
                for line in chunk[:end].decode("utf-8", "replace").splitlines():
                    m = CODE_RE.search(ANSI_RE.sub("", line))
                    if m:
                        self.codes[m.group(1)] = m.group(2)
                for masked, code in self.codes.items():
                    if masked.endswith(masked_suffix):
                        return code
            time.sleep(0.02)
        raise RuntimeError(f"no code for the number ending {masked_suffix} in the server log")


def make_user(base, log, i):
    username = f"bench{i:04d}"
    number = f"+4474001{i:05d}"
    c = Client(base)
    token, _ = c.csrf("/register/")
    c.request(
        "POST",
        "/register/",
        {"username": username, "password1": PASSWORD, "password2": PASSWORD,
         "next": "/polls/", "csrf_token": token},
        expect=(303,),
    )
    token, _ = c.csrf("/2fa/?next=/polls/1/")
    c.request(
        "POST",
        "/2fa/create/",
        {"number": number, "next": "/polls/1/", "csrf_token": token},
        expect=(303,),
    )
    code = log.wait(number[-4:])
    token, _ = c.csrf("/2fa/verify/?next=/polls/1/")
    _, location, _ = c.request(
        "POST",
        "/2fa/confirm/",
        {"code": code, "next": "/polls/1/", "csrf_token": token},
        expect=(303,),
    )
    if location != "/polls/1/":
        raise RuntimeError(f"{username}: confirm went to {location}, not /polls/1/")
    # The verified session's token (rotated at verification), as the poll page renders it.
    token, page = c.csrf("/polls/1/")
    return username, c.cookie, token, CHOICE_RE.findall(page)


def users(base, log_path, count, out):
    if count > 10000:
        raise SystemExit("at most 10000 users (the masked numbers must differ in 4 digits)")
    log = CodeLog(log_path)
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        made = list(pool.map(lambda i: make_user(base, log, i), range(count)))
    with open(out, "w") as f:
        for username, cookie, token, _ in made:
            f.write(f"{username}\t{cookie}\t{token}\n")
    choices = made[0][3]
    if not choices:
        raise SystemExit("poll 1 shows no choices")
    print(",".join(choices))


def login_pair(base, username):
    c = Client(base)
    token, _ = c.csrf("/login/")
    body = urllib.parse.urlencode(
        {"username": username, "password": PASSWORD, "next": "/polls/", "csrf_token": token}
    )
    return body, c.cookie_header()


def login_pairs(base, users_file, count, out):
    with open(users_file) as f:
        names = [line.split("\t", 1)[0] for line in f if line.strip()]
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        pairs = list(pool.map(lambda i: login_pair(base, names[i % len(names)]), range(count)))
    with open(out, "w") as f:
        for body, cookie in pairs:
            f.write(f"{body}\t{cookie}\n")


def probe_logins(base, users_file, seconds, out):
    with open(users_file) as f:
        name = [line.split("\t", 1)[0] for line in f if line.strip()][-1]
    admitted, turned_away, other = [], 0, 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        body, cookie = login_pair(base, name)
        c = Client(base)
        start = time.monotonic()
        c.conn.request("POST", "/login/", body=body, headers={
            "Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"})
        res = c.conn.getresponse()
        res.read()
        took = (time.monotonic() - start) * 1000
        if res.status == 303:
            admitted.append(took)
        elif res.status == 429:
            turned_away += 1
            time.sleep(0.05)
        else:
            other += 1
    admitted.sort()

    def pct(p):
        return admitted[min(len(admitted) - 1, int(p / 100 * len(admitted)))] if admitted else 0.0

    line = (f"admitted={len(admitted)} turned_away={turned_away} other={other} "
            f"p50_ms={pct(50):.1f} p99_ms={pct(99):.1f} "
            f"max_ms={(admitted[-1] if admitted else 0.0):.1f}")
    with open(out, "w") as f:
        f.write(line + "\n")
    print(line, file=sys.stderr)


def main(argv):
    if len(argv) == 6 and argv[1] == "users":
        users(argv[2], argv[3], int(argv[4]), argv[5])
    elif len(argv) == 6 and argv[1] == "login-pairs":
        login_pairs(argv[2], argv[3], int(argv[4]), argv[5])
    elif len(argv) == 6 and argv[1] == "probe-logins":
        probe_logins(argv[2], argv[3], float(argv[4]), argv[5])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
