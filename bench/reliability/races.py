#!/usr/bin/env python3
"""Races: many concurrent clients creating (POST), changing (PUT) and deleting
(DELETE) the same few tokens, then checking that the audit trail, the database
and the in-memory credential view all tell the same story.

Every request's send and answer instants are recorded on one monotonic clock.
PUT and DELETE answer 200 whether or not the token still exists, so the checks
use what must have happened:

* no answer is a 5xx, and every answer is the documented one (201, 200, 200);
* every 201 has exactly one `api-token-created` event, and no other token does;
* per token the events read created, updated*, then at most one deleted, with
  nothing after the delete; a token that was sent a DELETE has exactly one
  `api-token-deleted` event, one that was not has none;
* a PUT answered before the token's first DELETE was sent has its event; a PUT
  sent after a DELETE was answered has none; no value is recorded twice; each
  event's `preData.expiresAt` is the previous event's value (no lost update);
* the newest 1000 events through `GET /api/admin/events` equal the database's;
* no deleted token authenticates: its credential gets 401, a live one 403 on
  `/api/admin/api-tokens`; the list holds exactly the live tokens with their
  last recorded expiry — checked before and after a restart (which reloads the
  view from the database).

    bench/reliability/races.py [--short] [--postgres URL] [--bin PATH]
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

BASE = dt.datetime(2032, 1, 1, tzinfo=dt.timezone.utc)
INF = float("inf")


def value(n):
    at = BASE + dt.timedelta(milliseconds=n * 1001)
    return at.strftime("%Y-%m-%dT%H:%M:%S") + f".{at.microsecond // 1000:03d}Z"


class Shared:
    def __init__(self):
        self.lock = threading.Lock()
        self.tokens = []  # dicts: selector, credential, name
        self.ops = []  # (kind, selector, value, sent, answered, status)
        self.counter = 0

    def next_value(self):
        with self.lock:
            self.counter += 1
            return value(self.counter)


def selector_of(credential):
    return credential.split("v2_", 1)[1][:22]


def worker(port, shared, slots, stop, seed, findings):
    rng = random.Random(seed)
    client = Client(port, ADMIN, timeout=30)
    while not stop.is_set():
        roll = rng.random()
        with shared.lock:
            recent = shared.tokens[-24:]
        if roll < 0.3 or not recent:
            name = rng.choice(slots)
            sent = time.monotonic()
            status, body = client.json("POST", "/api/admin/api-tokens",
                                       {"tokenName": name, "type": "backend"})
            answered = time.monotonic()
            selector = None
            if status == 201:
                selector = selector_of(body["secret"])
                with shared.lock:
                    shared.tokens.append({"selector": selector, "credential": body["secret"], "name": name})
            with shared.lock:
                shared.ops.append(("create", selector, None, sent, answered, status))
            continue
        token = rng.choice(recent)
        # Address the token by selector, or now and then by its full credential.
        ref = token["selector"] if rng.random() < 0.8 else quote(token["credential"])
        if roll < 0.75:
            v = shared.next_value()
            sent = time.monotonic()
            status, _ = client.request("PUT", f"/api/admin/api-tokens/{ref}", {"expiresAt": v})
            answered = time.monotonic()
            with shared.lock:
                shared.ops.append(("put", token["selector"], v, sent, answered, status))
        else:
            sent = time.monotonic()
            status, _ = client.request("DELETE", f"/api/admin/api-tokens/{ref}")
            answered = time.monotonic()
            with shared.lock:
                shared.ops.append(("delete", token["selector"], None, sent, answered, status))
    client.close()


def check_events(server, shared, findings):
    rows = server.db.query("SELECT id, event_type, created_by, data, pre_data FROM events ORDER BY id")
    events = {}
    for _id, kind, created_by, data, pre in rows:
        if created_by == "system":
            continue  # the bootstrap admin token
        data = json.loads(data) if data else None
        pre = json.loads(pre) if pre else None
        selector = (data or pre)["secret"]
        events.setdefault(selector, []).append((kind, pre, data))

    created = {t["selector"] for t in shared.tokens}
    findings.check(set(events) <= created,
                   f"events for tokens no 201 announced: {sorted(set(events) - created)[:3]}")
    by_selector = {}
    for kind, selector, v, sent, answered, status in shared.ops:
        if selector:
            by_selector.setdefault(selector, []).append((kind, v, sent, answered, status))

    changes = 0
    for selector in created:
        history = events.get(selector, [])
        kinds = [k for k, _, _ in history]
        changes += len(history)
        ops = by_selector.get(selector, [])
        if not findings.check(kinds.count("api-token-created") == 1 and kinds[:1] == ["api-token-created"],
                              f"{selector}: events {kinds[:6]} do not start with one create"):
            continue
        deletes = [op for op in ops if op[0] == "delete"]
        deleted_events = kinds.count("api-token-deleted")
        if deletes:
            findings.check(deleted_events == 1 and kinds[-1] == "api-token-deleted",
                           f"{selector}: {len(deletes)} DELETEs answered 200 but events end {kinds[-3:]}")
        else:
            findings.check(deleted_events == 0, f"{selector}: deleted without a DELETE")
        first_delete_sent = min((op[2] for op in deletes), default=INF)
        first_delete_answered = min((op[3] for op in deletes), default=INF)
        puts = [op for op in ops if op[0] == "put"]
        recorded = [data["expiresAt"] for k, _, data in history if k == "api-token-updated"]
        must = {op[1] for op in puts if op[3] < first_delete_sent}
        may = {op[1] for op in puts if op[2] < first_delete_answered}
        findings.check(len(recorded) == len(set(recorded)), f"{selector}: a PUT value recorded twice")
        missing = must - set(recorded)
        findings.check(not missing, f"{selector}: {len(missing)} PUTs answered before any DELETE "
                       f"have no event, e.g. {sorted(missing)[:2]}")
        extra = set(recorded) - may
        findings.check(not extra, f"{selector}: events for PUTs sent after the delete was answered: "
                       f"{sorted(extra)[:2]}")
        previous = history[0][2]["expiresAt"]
        for kind, pre, data in history[1:]:
            if not findings.check(pre["expiresAt"] == previous,
                                  f"{selector}: {kind} preData.expiresAt {pre['expiresAt']}, "
                                  f"previous value {previous} (lost update?)"):
                break
            previous = data["expiresAt"] if data else None
    return rows, changes


def event_state(server):
    """From every event: the deleted selectors, and each token's last expiry."""
    deleted, expiry = set(), {}
    for kind, data, pre in server.db.query("SELECT event_type, data, pre_data FROM events ORDER BY id"):
        if kind == "api-token-deleted":
            deleted.add(json.loads(pre)["secret"])
        elif data:
            data = json.loads(data)
            expiry[data["secret"]] = data["expiresAt"]
    return deleted, expiry


def check_view(server, shared, findings, when):
    """Credentials authenticate as the events say; the list holds exactly the live ones."""
    deleted, expiry = event_state(server)
    client = Client(server.port, ADMIN)
    for token in shared.tokens:
        status, _ = client.request("GET", "/api/admin/api-tokens", auth=token["credential"])
        expected = 401 if token["selector"] in deleted else 403
        findings.check(status == expected, f"{when}: {token['selector']} "
                       f"({'deleted' if expected == 401 else 'live'}) got {status}, expected {expected}")
    status, body = client.json("GET", "/api/admin/api-tokens")
    listed = {t["secret"]: t for t in body["tokens"] if t["tokenName"].startswith("race-")}
    live = {t["selector"] for t in shared.tokens} - deleted
    findings.check(set(listed) == live, f"{when}: list has {len(listed)} race tokens, "
                   f"{len(live)} are live; difference {sorted(set(listed) ^ live)[:3]}")
    for selector in live & set(listed):
        findings.check(listed[selector]["expiresAt"] == expiry.get(selector),
                       f"{when}: {selector} lists expiresAt {listed[selector]['expiresAt']}, "
                       f"its last event says {expiry.get(selector)}")
    client.close()
    return len(deleted & {t["selector"] for t in shared.tokens}), len(live)


def main():
    parser = kwbench.parser(__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, help="seconds of load (default 60, --short 20)")
    args = parser.parse_args()
    duration = args.duration or (20 if args.short else 60)
    workers = 8 if args.short else 16
    slots = [f"race-{i}" for i in range(6 if args.short else 12)]
    findings = Findings("races")

    with Server(args, name="races") as server:
        log(f"{server.db.backend}: {workers} clients for {duration:.0f}s over {len(slots)} names")
        server.start()
        shared = Shared()
        stop = threading.Event()
        failures = []

        def run(seed):
            try:
                worker(server.port, shared, slots, stop, seed, findings)
            except Exception as error:  # a dead connection means the server failed
                failures.append(repr(error))

        threads = [threading.Thread(target=run, args=(seed,), daemon=True) for seed in range(workers)]
        for t in threads:
            t.start()
        time.sleep(duration)
        stop.set()
        for t in threads:
            t.join(timeout=60)
        findings.check(not any(t.is_alive() for t in threads), "a client did not finish within 60 s")
        findings.check(not failures, f"client errors: {failures[:3]}")

        expected = {"create": {201}, "put": {200}, "delete": {200}}
        counts = {}
        for kind, _sel, _v, _s, _a, status in shared.ops:
            counts[(kind, status)] = counts.get((kind, status), 0) + 1
        for (kind, status), n in sorted(counts.items()):
            findings.check(status in expected[kind], f"{n} × {kind} answered {status}")
        log("answers: " + ", ".join(f"{k} {s}: {n}" for (k, s), n in sorted(counts.items())))

        rows, changes = check_events(server, shared, findings)
        status, body = Client(server.port, ADMIN).json("GET", "/api/admin/events?limit=1000")
        if findings.check(status == 200, f"GET /api/admin/events: {status}"):
            api = [e["id"] for e in body["events"]]
            newest = [int(r[0]) for r in reversed(rows)][:1000]
            findings.check(api == newest, "the API's newest events differ from the database's")
        deleted, live = check_view(server, shared, findings, "before restart")
        server.stop()
        server.start()
        check_view(server, shared, findings, "after restart")
        findings.check("panicked" not in server.log_text(), "the server log shows a panic")
    findings.exit(f"{len(shared.ops)} requests ({sum(n for (k, _), n in counts.items() if k == 'create')} "
                  f"creates), {changes} audit events checked, {deleted} deleted tokens, "
                  f"{live} live ones")


if __name__ == "__main__":
    main()
