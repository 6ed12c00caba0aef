#!/usr/bin/env python3
"""Webhooks: the outbox under kill -9 and under a receiver outage (lifecycle §4).

A receiver in this process (stdlib `http.server`, threaded) verifies every
delivery itself — `webhook-signature` must be `v1,` + base64 HMAC-SHA256 of
`<webhook-id>.<webhook-timestamp>.<body>` under the endpoint's `whsec_` key —
and records each attempt (path, `webhook-id`, `data.eventId`, its answer) in
arrival order. keywarden (the real binary, SQLite unless --postgres) gets two
`[[webhooks]]` endpoints through a `--config` overlay: `/all` takes every event,
`/lifecycle` only `api-token-created` and `api-token-deleted` (so the cursor
also moves past events an endpoint does not take).

Scenario `kill`: client threads create tokens, PUT their expiry and delete
some; keywarden is killed with SIGKILL mid-burst and restarted on the same
database (once, --short; three times otherwise), the burst goes on, and then
the run waits (bounded) until the receiver has everything.

Scenario `outage`: a fresh database; the receiver answers 503 for the first
seconds of a burst, then 2xx.

Checked, per endpoint, against the whole audit trail (paged through
`GET /api/admin/search/events` and compared with the database's log order,
which on PostgreSQL is (tx, id), not the id):

* every event the endpoint takes was accepted (2xx) at least once, with a
  valid signature, and no event it does not take ever arrived;
* order: when an event is first attempted, every event before it in log
  order has been accepted — nothing overtakes, nothing is skipped;
* `webhook-id` is `evt_<eventId>_<createdAt ms>`, the same on every attempt,
  `data.eventId`/`type`/`timestamp` match the audit trail, and
  `webhook-timestamp` is within 5 minutes of arrival;
* duplicates (a second accepted delivery of an event) only at a kill: at most
  5 per kill, none in the outage scenario;
* after a restart, deliveries resume within 10 s of the process start;
* no body contains a credential (any secret a create returned, or the
  bootstrap admin secret);
* `keywarden webhooks status` shows an empty backlog at the end, and the
  outage shows up as failed deliveries in the metrics.

    bench/reliability/webhooks.py [--short] [--kills N] [--postgres URL] [--bin PATH]
"""

import base64
import datetime as dt
import hashlib
import hmac
import http.server
import json
import os
import random
import re
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
import kwbench  # noqa: E402
from kwbench import ADMIN, Client, Findings, Server, log, quote  # noqa: E402

BASE = dt.datetime(2033, 1, 1, tzinfo=dt.timezone.utc)
# Standard Webhooks' recommended tolerance for webhook-timestamp.
TOLERANCE_S = 300
# The contract: pending deliveries resume within 10 s of a restart.
RESUME_S = 10
DUPLICATES_PER_KILL = 5
LIFECYCLE_TYPES = {"api-token-created", "api-token-deleted"}


def new_secret():
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def value(n):
    at = BASE + dt.timedelta(milliseconds=n * 1001)
    return at.strftime("%Y-%m-%dT%H:%M:%S") + f".{at.microsecond // 1000:03d}Z"


def rfc3339_ms(text):
    """Milliseconds since the epoch of keywarden's `…T…Z` timestamps."""
    at = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return round(at.timestamp() * 1000)


def verify_signature(secret, msg_id, timestamp, body, header):
    """Standard Webhooks: any of the space-separated `v1,<sig>` entries matches."""
    key = base64.b64decode(secret[len("whsec_"):])
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    for entry in header.split():
        version, _, signature = entry.partition(",")
        if version == "v1" and hmac.compare_digest(signature, expected):
            return True
    return False


class Receiver:
    """Records every POST; answers `status()` (2xx unless told otherwise)."""

    def __init__(self, secrets):
        self.secrets = secrets  # path -> whsec_ secret
        self.lock = threading.Lock()
        self.arrivals = []  # dicts in arrival order
        self.fail_until = 0.0  # monotonic instant until which it answers 503
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                status = receiver.record(self.path, self.headers, body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.handler = Handler
        class Quiet(http.server.ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                # keywarden killed mid-request resets the connection: expected.
                if not isinstance(sys.exc_info()[1], ConnectionError):
                    super().handle_error(request, client_address)

        self.server = Quiet(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def record(self, path, headers, body):
        now = time.monotonic()
        msg_id = headers.get("webhook-id", "")
        timestamp = headers.get("webhook-timestamp", "")
        secret = self.secrets.get(path)
        valid = bool(secret) and verify_signature(secret, msg_id, timestamp,
                                                  body, headers.get("webhook-signature", ""))
        try:
            message = json.loads(body)
        except ValueError:
            message = None
        event_id = message.get("data", {}).get("eventId") if isinstance(message, dict) else None
        # Decided here, under the lock, so that the answer and the record agree.
        with self.lock:
            status = 503 if now < self.fail_until else 200
            self.arrivals.append({"at": now, "wall": time.time(), "path": path, "id": msg_id,
                                  "timestamp": timestamp, "valid": valid, "event_id": event_id,
                                  "message": message, "body": body, "status": status})
        return status

    def snapshot(self):
        with self.lock:
            return list(self.arrivals)

    def accepted_ids(self, path):
        with self.lock:
            return {a["event_id"] for a in self.arrivals if a["path"] == path and a["status"] < 300}

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Burst:
    """Client threads creating, updating and deleting tokens until stopped;
    a connection error (the server killed) is waited out and the next
    operation tried."""

    def __init__(self, port, threads, pause, findings):
        self.port = port
        self.threads = threads
        # Seconds each thread waits after a request: keeps the burst within
        # what the run's time budget can deliver.
        self.pause = pause
        self.findings = findings
        self.lock = threading.Lock()
        self.credentials = []
        self.counter = 0
        self.stats = {"created": 0, "updated": 0, "deleted": 0, "errors": 0}
        self.stop = threading.Event()
        self.workers = []

    def bump(self, key):
        with self.lock:
            self.stats[key] += 1

    def next_value(self):
        with self.lock:
            self.counter += 1
            return self.counter

    def call(self, client, method, path, body=None):
        time.sleep(self.pause)
        try:
            return client.request(method, path, body)
        except OSError:
            self.bump("errors")
            time.sleep(0.05)
            return None, None

    def run(self, worker):
        rng = random.Random(worker)
        client = Client(self.port, ADMIN, timeout=10)
        while not self.stop.is_set():
            n = self.next_value()
            status, body = self.call(client, "POST", "/api/admin/api-tokens",
                                     {"tokenName": f"wh-{n}", "type": "backend"})
            if status is None:
                continue
            if status != 201:
                self.findings.fail(f"create wh-{n}: {status} {body[:200]!r}")
                continue
            credential = json.loads(body)["secret"]
            with self.lock:
                self.credentials.append(credential)
            self.bump("created")
            selector = credential.split("v2_", 1)[1][:22]
            for _ in range(rng.randint(1, 3)):
                status, body = self.call(client, "PUT", f"/api/admin/api-tokens/{quote(selector)}",
                                         {"expiresAt": value(self.next_value())})
                if status == 200:
                    self.bump("updated")
                elif status is not None:
                    self.findings.fail(f"PUT wh-{n}: {status} {body[:200]!r}")
            if rng.random() < 0.5:
                status, body = self.call(client, "DELETE", f"/api/admin/api-tokens/{quote(selector)}")
                if status == 200:
                    self.bump("deleted")
                elif status is not None:
                    self.findings.fail(f"DELETE wh-{n}: {status} {body[:200]!r}")
        client.close()

    def start(self):
        self.workers = [threading.Thread(target=self.run, args=(w,), daemon=True)
                        for w in range(self.threads)]
        for w in self.workers:
            w.start()

    def finish(self):
        self.stop.set()
        for w in self.workers:
            w.join(timeout=30)
        self.findings.check(all(not w.is_alive() for w in self.workers), "a client thread did not stop")


def audit_trail(server, findings):
    """Every event through the search API, in the database's log order."""
    client = Client(server.port, ADMIN, timeout=30)
    events, offset = {}, 0
    while True:
        status, body = client.json("GET", f"/api/admin/search/events?offset={offset}&limit=1000")
        if not findings.check(status == 200, f"GET /api/admin/search/events: {status}"):
            break
        if not body["events"]:
            break
        for event in body["events"]:
            events[event["id"]] = event
        offset += len(body["events"])
    client.close()
    findings.check(len(events) == offset, f"the search API repeated events: {offset} read, "
                   f"{len(events)} distinct")
    order = "tx, id" if server.db.backend == "postgres" else "id"
    ids = [int(row[0]) for row in server.db.query(f"SELECT id FROM events ORDER BY {order}")]
    findings.check(set(ids) == set(events), f"the search API has {len(events)} events, the "
                   f"database {len(ids)}")
    return [events[i] for i in ids if i in events]


def check_endpoint(path, takes, trail, arrivals, findings):
    """The checks of the module docstring for one endpoint; its duplicates."""
    wanted = [e for e in trail if takes(e["type"])]
    index = {e["id"]: i for i, e in enumerate(wanted)}
    by_id = {e["id"]: e for e in trail}
    mine = [a for a in arrivals if a["path"] == path]
    accepted, attempted, ids_seen = set(), set(), {}
    # wanted[:prefix] were all accepted: the events an event may follow.
    prefix = 0
    duplicates = 0
    problems = 0

    def fail(message):
        nonlocal problems
        problems += 1
        if problems <= 10:
            findings.fail(f"{path}: {message}")

    for a in mine:
        event_id = a["event_id"]
        if not a["valid"]:
            fail(f"invalid signature on {a['id']!r}")
        if abs(int(a["timestamp"] or 0) - a["wall"]) > TOLERANCE_S:
            fail(f"webhook-timestamp {a['timestamp']!r} is far from the arrival")
        event = by_id.get(event_id)
        if event is None:
            fail(f"delivery of event {event_id!r} which the audit trail lacks")
            continue
        if event_id not in index:
            fail(f"event {event_id} ({event['type']}) delivered, but the endpoint does not take it")
            continue
        expected_id = f"evt_{event_id}_{rfc3339_ms(event['createdAt'])}"
        if ids_seen.setdefault(event_id, a["id"]) != a["id"] or a["id"] != expected_id:
            fail(f"webhook-id {a['id']!r} for event {event_id}, expected {expected_id!r}")
        message = a["message"]
        if (message.get("type") != event["type"] or message.get("timestamp") != event["createdAt"]
                or message["data"].get("createdBy") != event["createdBy"]):
            fail(f"event {event_id}: message {message.get('type')}/{message.get('timestamp')} "
                 f"differs from the audit trail's {event['type']}/{event['createdAt']}")
        if event_id not in attempted:
            attempted.add(event_id)
            # Everything before it in log order must have been accepted already.
            if index[event_id] > prefix:
                fail(f"event {event_id} sent before event {wanted[prefix]['id']} (earlier in "
                     f"log order) was accepted")
        if a["status"] < 300:
            if event_id in accepted:
                duplicates += 1
            accepted.add(event_id)
            while prefix < len(wanted) and wanted[prefix]["id"] in accepted:
                prefix += 1
    missing = [e["id"] for e in wanted if e["id"] not in accepted]
    if missing:
        fail(f"{len(missing)} of {len(wanted)} events never accepted (first {missing[:10]})")
    return {"events": len(wanted), "arrivals": len(mine), "duplicates": duplicates,
            "rejected": sum(1 for a in mine if a["status"] >= 300)}


# A whole credential's body, whichever create it came from (even one whose
# answer a kill lost): v2_<22-character selector>_<43-character random part>.
CREDENTIAL = re.compile(r"v2_[A-Za-z0-9_-]{22}_[A-Za-z0-9_-]{43}")
# Where a random part (URL-safe base64, 43 characters) could hide.
RUN = re.compile(r"[A-Za-z0-9_-]{43,}")


def check_no_credentials(arrivals, credentials, findings):
    """No body holds a credential, nor the random part of one the burst was
    given, nor the bootstrap admin secret; how many secrets were looked for."""
    randoms = {credential.split("v2_", 1)[1][23:] for credential in credentials}
    admin = ADMIN.split(".", 1)[1]
    leaks = 0
    for a in arrivals:
        text = a["body"].decode("utf-8", "replace")
        leaked = admin in text or CREDENTIAL.search(text) is not None
        for run in RUN.findall(text):
            if any(run[i:i + 43] in randoms for i in range(len(run) - 42)):
                leaked = True
        if leaked:
            leaks += 1
            if leaks <= 5:
                findings.fail(f"delivery {a['id']} contains a credential")
    return len(randoms) + 1


def wait_delivered(receiver, server, endpoints, findings, timeout):
    """Waits until each endpoint accepted every event it takes; seconds waited."""
    start = time.monotonic()
    deadline = start + timeout
    order = "tx, id" if server.db.backend == "postgres" else "id"
    delivered = False
    while not delivered and time.monotonic() < deadline:
        rows = server.db.query(f"SELECT id, event_type FROM events ORDER BY {order}")
        delivered = all({int(i) for i, kind in rows if takes(kind)} <= receiver.accepted_ids(path)
                        for path, takes in endpoints.items())
        if not delivered:
            time.sleep(0.2)
    waited = time.monotonic() - start
    findings.check(delivered, f"not everything was delivered within {timeout} s")
    return waited


def webhook_status(server, findings):
    """`keywarden webhooks status`, run as an operator would, on the same config."""
    out = subprocess.run([server.binary, "webhooks", "status"], cwd=server.folder, env=server.env,
                         capture_output=True, text=True, timeout=60)
    if not findings.check(out.returncode == 0, f"webhooks status exited {out.returncode}: "
                          f"{out.stderr[-500:]}"):
        return out.stdout
    lines = [line for line in out.stdout.splitlines() if line.strip()]
    for line in lines[1:]:
        columns = line.split()
        findings.check(len(columns) > 1 and columns[1] == "0",
                       f"webhooks status shows a backlog: {line}")
    findings.check(len(lines) == 3, f"webhooks status lists {len(lines) - 1} endpoints, not 2:\n{out.stdout}")
    return out.stdout


def metric(server, name, **labels):
    status, body = kwbench.request(server.port, "GET", "/internal-backstage/prometheus")
    total = 0.0
    for line in body.decode().splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def configure(server, receiver):
    overlay = os.path.join(server.folder, "webhooks.toml")
    with open(overlay, "w") as f:
        f.write(f'[[webhooks]]\nurl = "{receiver.url("/all")}"\nsecret = "{receiver.secrets["/all"]}"\n\n'
                f'[[webhooks]]\nurl = "{receiver.url("/lifecycle")}"\n'
                f'secret = "{receiver.secrets["/lifecycle"]}"\n'
                f'events = {json.dumps(sorted(LIFECYCLE_TYPES))}\n')
    server.env["KEYWARDEN_CONFIG"] = overlay


ENDPOINTS = {"/all": lambda kind: True, "/lifecycle": lambda kind: kind in LIFECYCLE_TYPES}


def verify(name, server, receiver, burst, findings, kills):
    trail = audit_trail(server, findings)
    arrivals = receiver.snapshot()
    results = {path: check_endpoint(path, takes, trail, arrivals, findings)
               for path, takes in ENDPOINTS.items()}
    duplicates = sum(r["duplicates"] for r in results.values())
    limit = DUPLICATES_PER_KILL * kills
    findings.check(duplicates <= limit, f"{name}: {duplicates} duplicate deliveries after "
                   f"{kills} kills (at most {limit})")
    checked = check_no_credentials(arrivals, burst.credentials, findings)
    findings.check("panicked" not in server.log_text(), f"{name}: the server log shows a panic")
    return results, duplicates, checked


def scenario_kill(args, findings):
    kills = args.kills or (1 if args.short else 3)
    burst_s = 6 if args.short else 20
    receiver = Receiver({"/all": new_secret(), "/lifecycle": new_secret()})
    try:
        with Server(args, name="webhooks-kill") as server:
            configure(server, receiver)
            server.start()
            burst = Burst(server.port, 4, 0.015 if args.short else 0.005, findings)
            started = time.monotonic()
            burst.start()
            resumes = []
            # Kills spread over the burst's first two thirds, so that each
            # restart still has a burst to deliver.
            for k in range(kills):
                time.sleep(max(0.5, started + burst_s * (k + 1) / (kills + 1.5)
                               + random.uniform(-0.5, 0.5) - time.monotonic()))
                before = len(receiver.snapshot())
                server.kill9()
                restart = time.monotonic()
                server.start()
                log(f"kill {k + 1}: killed after {before} arrivals; healthy again in "
                    f"{time.monotonic() - restart:.1f} s")
                resumes.append((restart, len(receiver.snapshot())))
                # The next kill waits for this restart's deliveries to resume.
                while (time.monotonic() - restart < RESUME_S + 5
                       and len(receiver.snapshot()) == resumes[-1][1]):
                    time.sleep(0.05)
            # The burst goes on a little after the last resume too.
            time.sleep(max(0.0, started + burst_s - time.monotonic(),
                           (resumes[-1][0] + RESUME_S + 2 - time.monotonic()) if resumes else 0))
            burst.finish()
            log(f"burst: {burst.stats}")
            waited = wait_delivered(receiver, server, ENDPOINTS, findings, 60 if args.short else 300)
            arrivals = receiver.snapshot()
            worst = 0.0
            for k, (restart, seen) in enumerate(resumes):
                later = arrivals[seen:]
                resumed = later[0]["at"] - restart if later else float("inf")
                worst = max(worst, resumed)
                findings.check(resumed <= RESUME_S, f"kill {k + 1}: deliveries resumed "
                               f"{resumed:.1f} s after the restart (at most {RESUME_S} s)")
            results, duplicates, secrets = verify("kill", server, receiver, burst, findings, kills)
            webhook_status(server, findings)
            summary = (f"{kills} kill -9, {burst.stats['created']} creates, {burst.stats['updated']} "
                       f"PUTs, {burst.stats['deleted']} deletes; "
                       + ", ".join(f"{p}: {r['events']} events in {r['arrivals']} arrivals"
                                   for p, r in results.items())
                       + f"; {duplicates} duplicates; slowest resume {worst:.1f} s; drained "
                       f"{waited:.1f} s after the burst; {secrets} secrets looked for")
            log(f"kill: {summary}")
            return summary
    finally:
        receiver.close()


def scenario_outage(args, findings):
    outage_s = 5 if args.short else 20
    burst_s = 3 if args.short else 10
    receiver = Receiver({"/all": new_secret(), "/lifecycle": new_secret()})
    try:
        with Server(args, name="webhooks-outage") as server:
            configure(server, receiver)
            receiver.fail_until = time.monotonic() + 3600
            server.start()
            receiver.fail_until = time.monotonic() + outage_s
            burst = Burst(server.port, 4, 0.015 if args.short else 0.005, findings)
            burst.start()
            time.sleep(burst_s)
            burst.finish()
            time.sleep(max(0.0, receiver.fail_until - time.monotonic()))
            log(f"burst: {burst.stats}; the receiver answers 2xx again")
            waited = wait_delivered(receiver, server, ENDPOINTS, findings, 60 if args.short else 300)
            results, duplicates, _ = verify("outage", server, receiver, burst, findings, 0)
            rejected = sum(r["rejected"] for r in results.values())
            findings.check(rejected > 0, "the receiver never answered 503: the outage was not tested")
            failed = metric(server, "keywarden_webhook_deliveries_total", result="failed")
            findings.check(failed >= rejected, f"metrics count {failed:.0f} failed deliveries, "
                           f"the receiver answered 503 {rejected} times")
            webhook_status(server, findings)
            summary = (f"{burst.stats['created']} creates during a {outage_s} s outage, "
                       + ", ".join(f"{p}: {r['events']} events, {r['rejected']} attempts answered 503"
                                   for p, r in results.items())
                       + f"; all delivered {waited:.1f} s after the outage ended")
            log(f"outage: {summary}")
            return summary
    finally:
        receiver.close()


def main():
    parser = kwbench.parser(__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, help="kill -9 cycles (default 3, --short 1)")
    args = parser.parse_args()
    findings = Findings("webhooks")
    summaries = [scenario_kill(args, findings), scenario_outage(args, findings)]
    findings.exit("; ".join(summaries))


if __name__ == "__main__":
    main()
