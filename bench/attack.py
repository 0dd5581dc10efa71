#!/usr/bin/env python3
"""The attacks of issue 23 against a running Pollstr, and what a legitimate visitor sees meanwhile
(bench/run.sh `attacks`). Standard library only; loopback only; every attack is bounded in
sockets, threads and time. Each attacker connects from its own loopback address (FROM, e.g.
127.0.0.2), as one client would: the server counts connections per address.

    attack.py pipeline BASE FROM SECONDS OUT
        200 sockets that pipeline 1,000 requests for a static file each and never read; a socket
        the server closes is re-opened (at most 200 new ones a second).
    attack.py slowloris BASE FROM SECONDS OUT
        100 new sockets a second, each sending half a request head and nothing more, kept open
        until the server closes them (at most 1,000 open at once).
    attack.py signup BASE FROM SECONDS OUT
        a sign-up flood: 48 threads, each fetching /register/ and posting a new account, in a
        loop (more than the password-hashing queue holds on 2 cores).
    attack.py probe BASE SECONDS OUT
        a visitor: GET /polls/ on a fresh connection, 20 a second from 4 threads; writes the share
        answered 200 and the latency percentiles.
    attack.py logins BASE USERS_FILE SECONDS OUT
        a user logging in, one login at a time (fresh visit, then POST /login/), as the last user
        of USERS_FILE (bench/setup.py's sessions); writes the share admitted and the latency.

Each command writes one key=value line to OUT.
"""

import http.client
import os
import select
import socket
import sys
import threading
import time
import urllib.parse

sys.dont_write_bytecode = True  # no __pycache__ beside the scripts
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from setup import CSRF_RE, PASSWORD, Client  # noqa: E402

HALF_HEAD = b"GET /polls/ HTTP/1.1\r\nHost: x\r\nUser-Agent: slow"
PIPELINED = b"GET /static/pollstr.css HTTP/1.1\r\nHost: x\r\n\r\n" * 1000


def host_port(base):
    url = urllib.parse.urlsplit(base)
    return url.hostname, url.port


def write(out, line):
    with open(out, "w") as f:
        f.write(line + "\n")
    print(line, file=sys.stderr)


def open_from(addr, source):
    """A non-blocking socket from SOURCE, connecting (or None if it could not)."""
    s = socket.socket()
    try:
        s.bind((source, 0))
        s.setblocking(False)
        s.connect_ex(addr)
    except OSError:
        s.close()
        return None
    return s


def socket_attack(base, source, seconds, out, *, payload, per_second, most_open, keep):
    """Opens up to PER_SECOND sockets a second (at most MOST_OPEN open, or KEEP when KEEP is
    set: then a closed one is replaced), sends PAYLOAD on each and never reads. Counts the
    sockets the server closed."""
    addr = host_port(base)
    poller = select.poll()
    socks = {}
    pending = {}  # fd -> bytes still to send
    opened = closed = 0
    most = keep or most_open
    deadline = time.monotonic() + seconds
    next_open = time.monotonic()
    flags = select.POLLOUT | select.POLLRDHUP | select.POLLHUP | select.POLLERR
    while time.monotonic() < deadline:
        now = time.monotonic()
        while len(socks) < most and now >= next_open:
            s = open_from(addr, source)
            next_open += 1 / per_second
            if s is None:
                continue
            socks[s.fileno()] = s
            pending[s.fileno()] = payload
            poller.register(s, flags)
            opened += 1
        if now > next_open + 1:
            next_open = now  # do not burst to catch up
        for fd, ev in poller.poll(10):
            s = socks.get(fd)
            if s is None:
                continue
            if ev & (select.POLLRDHUP | select.POLLHUP | select.POLLERR):
                poller.unregister(fd)
                s.close()
                del socks[fd]
                pending.pop(fd, None)
                closed += 1
                continue
            if ev & select.POLLOUT:
                data = pending.get(fd, b"")
                try:
                    n = s.send(data) if data else 0
                except (BlockingIOError, InterruptedError):
                    n = 0
                except OSError:
                    n = len(data)
                rest = data[n:]
                if rest:
                    pending[fd] = rest
                else:
                    pending.pop(fd, None)
                    # Only a close matters from now on.
                    poller.modify(fd, select.POLLRDHUP | select.POLLHUP | select.POLLERR)
    still = len(socks)
    for s in socks.values():
        s.close()
    write(out, f"opened={opened} closed_by_server={closed} open_at_end={still}")


def signup(base, source, seconds, out):
    host, port = host_port(base)
    counts = {"created": 0, "turned_away": 0, "other": 0, "failed": 0}
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def flood(t):
        i = 0
        while time.monotonic() < deadline:
            i += 1
            key = "failed"
            try:
                c = Client(base)
                c.conn = http.client.HTTPConnection(host, port, timeout=10,
                                                    source_address=(source, 0))
                _, _, page = c.request("GET", "/register/", expect=(200, 429, 503))
                m = CSRF_RE.search(page)
                if m:
                    name = f"flood{os.getpid()}t{t}n{i}"
                    status, _, _ = c.request(
                        "POST", "/register/",
                        {"username": name, "password1": PASSWORD, "password2": PASSWORD,
                         "next": "/polls/", "csrf_token": m.group(1)},
                        expect=(303, 200, 400, 429, 503))
                    key = {303: "created", 429: "turned_away"}.get(status, "other")
                else:
                    key = "other"
                c.conn.close()
            except (OSError, http.client.HTTPException, RuntimeError):
                pass
            with lock:
                counts[key] += 1

    threads = [threading.Thread(target=flood, args=(t,)) for t in range(48)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    write(out, " ".join(f"{k}={v}" for k, v in counts.items()))


def percentiles(times):
    times = sorted(times)

    def pct(p):
        return times[min(len(times) - 1, int(p / 100 * len(times)))] if times else 0.0

    return (f"p50_ms={pct(50):.1f} p99_ms={pct(99):.1f} "
            f"max_ms={(times[-1] if times else 0.0):.1f}")


def probe(base, seconds, out):
    """What a visitor sees: every request on a fresh connection (a new visitor must get in)."""
    host, port = host_port(base)
    ok_times = []
    counts = {"requests": 0, "answered": 0, "refused": 0, "failed": 0}
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def visit(t):
        next_at = time.monotonic() + t * 0.05
        while True:
            time.sleep(max(0.0, next_at - time.monotonic()))
            if time.monotonic() >= deadline:
                return
            next_at += 0.2
            start = time.monotonic()
            key = "failed"
            try:
                c = http.client.HTTPConnection(host, port, timeout=10)
                c.request("GET", "/polls/")
                res = c.getresponse()
                res.read()
                c.close()
                key = {200: "answered", 503: "refused"}.get(res.status, "failed")
            except (OSError, http.client.HTTPException):
                pass
            took = (time.monotonic() - start) * 1000
            with lock:
                counts["requests"] += 1
                counts[key] += 1
                if key == "answered":
                    ok_times.append(took)

    threads = [threading.Thread(target=visit, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    write(out, " ".join(f"{k}={v}" for k, v in counts.items()) + " " + percentiles(ok_times))


def logins(base, users_file, seconds, out):
    with open(users_file) as f:
        name = [line.split("\t", 1)[0] for line in f if line.strip()][-1]
    times = []
    counts = {"attempts": 0, "admitted": 0, "turned_away": 0, "failed": 0}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        counts["attempts"] += 1
        key = "failed"
        try:
            c = Client(base)
            token, _ = c.csrf("/login/")
            start = time.monotonic()
            status, _, _ = c.request(
                "POST", "/login/",
                {"username": name, "password": PASSWORD, "next": "/polls/", "csrf_token": token},
                expect=(303, 429, 503, 200))
            took = (time.monotonic() - start) * 1000
            if status == 303:
                key = "admitted"
                times.append(took)
            elif status == 429:
                key = "turned_away"
                time.sleep(0.05)
            c.conn.close()
        except (OSError, http.client.HTTPException, RuntimeError):
            time.sleep(0.05)
        counts[key] += 1
    write(out, " ".join(f"{k}={v}" for k, v in counts.items()) + " " + percentiles(times))


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "pipeline" and len(argv) == 6:
        socket_attack(argv[2], argv[3], float(argv[4]), argv[5], payload=PIPELINED,
                      per_second=200, most_open=200, keep=200)
    elif cmd == "slowloris" and len(argv) == 6:
        socket_attack(argv[2], argv[3], float(argv[4]), argv[5], payload=HALF_HEAD,
                      per_second=100, most_open=1000, keep=None)
    elif cmd == "signup" and len(argv) == 6:
        signup(argv[2], argv[3], float(argv[4]), argv[5])
    elif cmd == "probe" and len(argv) == 5:
        probe(argv[2], float(argv[3]), argv[4])
    elif cmd == "logins" and len(argv) == 6:
        logins(argv[2], argv[3], float(argv[4]), argv[5])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
