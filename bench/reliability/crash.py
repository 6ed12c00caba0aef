#!/usr/bin/env python3
"""Crash safety: kill -9 keywarden in the middle of a PUT load, restart it, and
check that nothing acknowledged was lost and nothing unacknowledged is half there.

Each client thread owns a disjoint set of tokens and sends its PUTs one at a
time, each with a distinct `expiresAt`, so for every token the client knows the
exact sequence of acknowledged values and the one value (at most) that was in
flight when the server died. After every restart:

* each token's `expiresAt` (read through the API) is its last acknowledged
  value, or the in-flight one if that PUT committed without its answer arriving;
* the token's `api-token-updated` events (all of them, read from the database;
  the newest 1000 also through `GET /api/admin/events`, which must agree) carry
  exactly the acknowledged values in order, plus the in-flight one if and only if
  it committed, and each event's `preData.expiresAt` is the previous event's value;
* SQLite: `PRAGMA integrity_check` is `ok`, on the file as the crash left it and
  after the restart.

    bench/reliability/crash.py [--short] [--cycles N] [--postgres URL] [--bin PATH]
"""

import datetime as dt
import json
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
import kwbench  # noqa: E402
from kwbench import ADMIN, Client, Findings, Server, log, quote  # noqa: E402

BASE = dt.datetime(2031, 1, 1, tzinfo=dt.timezone.utc)


class Counter:
    def __init__(self):
        self.lock = threading.Lock()
        self.n = 0

    def next(self):
        with self.lock:
            self.n += 1
            return self.n


def value(n):
    """A distinct expiry per PUT, with milliseconds, in keywarden's output format."""
    at = BASE + dt.timedelta(milliseconds=n * 1001)
    return at.strftime("%Y-%m-%dT%H:%M:%S") + f".{at.microsecond // 1000:03d}Z"


class Token:
    def __init__(self, name, selector):
        self.name = name
        self.selector = selector
        self.committed = []  # values known to be stored, in order (acked or resolved)
        self.in_flight = None  # value of a PUT sent but not answered


def load(port, tokens, counter, stop, stats, findings):
    client = Client(port, ADMIN, timeout=10)
    while not stop.is_set():
        for token in tokens:
            if stop.is_set():
                break
            v = value(counter.next())
            token.in_flight = v
            try:
                status, body = client.request("PUT", f"/api/admin/api-tokens/{token.selector}",
                                              {"expiresAt": v})
            except OSError:
                stats["errors"] += 1
                return  # the server is gone: this PUT stays in flight
            if status == 200:
                token.committed.append(v)
                token.in_flight = None
                stats["acked"] += 1
            else:
                # A definite non-200 answer changed nothing.
                token.in_flight = None
                stats["non200"] += 1
                if status >= 500:
                    findings.fail(f"PUT {token.name} answered {status}: {body[:200]!r}")


def integrity(server, findings, when):
    if server.db.path is None:
        return
    rows = server.db.query("PRAGMA integrity_check")
    findings.check(rows == [["ok"]], f"integrity_check {when}: {rows[:5]}")


def verify(server, tokens, findings):
    client = Client(server.port, ADMIN)
    resolved = 0
    for token in tokens:
        status, body = client.json("GET", f"/api/admin/api-tokens/{quote(token.name)}")
        if not findings.check(status == 200 and body and len(body["tokens"]) == 1,
                              f"GET {token.name}: {status} {body}"):
            continue
        stored = body["tokens"][0]["expiresAt"]
        last = token.committed[-1] if token.committed else None
        if token.in_flight is not None and stored == token.in_flight:
            token.committed.append(token.in_flight)  # committed, answer lost in the crash
            resolved += 1
        elif not findings.check(stored == last, f"{token.name}: stored expiresAt {stored}, "
                                f"last acknowledged {last}, in flight {token.in_flight}"):
            pass
        token.in_flight = None

    # Every update event, from the database itself (the API returns 1000 at most).
    rows = server.db.query("SELECT id, data, pre_data FROM events "
                           "WHERE event_type = 'api-token-updated' ORDER BY id")
    by_selector = {}
    for _id, data, pre in rows:
        data, pre = json.loads(data), json.loads(pre)
        by_selector.setdefault(data["secret"], []).append((pre["expiresAt"], data["expiresAt"]))
    for token in tokens:
        events = by_selector.pop(token.selector, [])
        values = [after for _, after in events]
        if values != token.committed:
            extra = [v for v in values if v not in token.committed]
            missing = [v for v in token.committed if v not in values]
            findings.fail(f"{token.name}: {len(values)} update events, {len(token.committed)} "
                          f"acknowledged changes; missing {missing[:3]}, unexpected {extra[:3]}")
        previous = None
        for before, after in events:
            if before != previous:
                findings.fail(f"{token.name}: event preData.expiresAt {before}, previous value {previous}")
                break
            previous = after
    findings.check(not by_selector, f"update events for unknown tokens: {list(by_selector)[:3]}")

    # The API's newest 1000 agree with the database.
    status, body = client.json("GET", "/api/admin/events?type=api-token-updated&limit=1000")
    if findings.check(status == 200, f"GET /api/admin/events: {status}"):
        api = [(e["data"]["secret"], e["data"]["expiresAt"]) for e in body["events"]]
        newest = [(json.loads(d)["secret"], json.loads(d)["expiresAt"]) for _, d, _ in reversed(rows)][:1000]
        findings.check(api == newest, f"the API's newest {len(api)} events differ from the "
                       f"database's newest {len(newest)}")
    return resolved, len(rows)


def main():
    parser = kwbench.parser(__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, help="kill/restart cycles (default 5, --short 2)")
    args = parser.parse_args()
    cycles = args.cycles or (2 if args.short else 5)
    token_count = 32 if args.short else 96
    threads = 8 if args.short else 16
    findings = Findings("crash")
    rng = random.Random()
    deadline = time.monotonic() + (100 if args.short else 900)

    with Server(args, name="crash") as server:
        log(f"{server.db.backend}, {cycles} cycles, {token_count} tokens, {threads} clients")
        server.start()
        client = Client(server.port, ADMIN)
        tokens = []
        for i in range(token_count):
            status, body = client.json("POST", "/api/admin/api-tokens",
                                       {"tokenName": f"crash-{i}", "type": "backend"})
            if status != 201:
                findings.fail(f"create crash-{i}: {status} {body}")
                findings.exit()
            tokens.append(Token(f"crash-{i}", body["secret"].split("v2_")[1][:22]))
        client.close()
        counter = Counter()
        total_acked = total_resolved = events = 0
        for cycle in range(1, cycles + 1):
            if time.monotonic() > deadline:
                log("time budget spent; stopping early")
                break
            stop = threading.Event()
            stats = {"acked": 0, "errors": 0, "non200": 0}
            workers = [threading.Thread(target=load, daemon=True,
                                        args=(server.port, tokens[t::threads], counter, stop, stats, findings))
                       for t in range(threads)]
            for w in workers:
                w.start()
            time.sleep(rng.uniform(1.5, 3.0) if args.short else rng.uniform(2.0, 6.0))
            server.kill9()
            stop.set()
            for w in workers:
                w.join(timeout=15)
            findings.check(all(not w.is_alive() for w in workers), "a client thread did not stop")
            in_flight = sum(1 for t in tokens if t.in_flight is not None)
            log(f"cycle {cycle}: killed after {stats['acked']} acknowledged PUTs "
                f"({in_flight} in flight, {stats['non200']} non-200)")
            integrity(server, findings, f"after kill -9 (cycle {cycle})")
            server.start()
            resolved, events = verify(server, tokens, findings)
            total_acked += stats["acked"]
            total_resolved += resolved
            findings.check("panicked" not in server.log_text(), "the server log shows a panic")
        server.stop()
        integrity(server, findings, "after the last clean stop")
    findings.exit(f"{total_acked} acknowledged PUTs over {cycles} kill -9 cycles, {total_resolved} "
                  f"unanswered ones found committed, {events} update events checked")


if __name__ == "__main__":
    main()
