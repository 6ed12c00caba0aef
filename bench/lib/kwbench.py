#!/usr/bin/env python3
"""The one helper library of bench/: standard library only.

As a module (bench/reliability/*.py, bench/seed.py): a `Server` runs the real
keywarden binary in a temporary directory on 127.0.0.1 (SQLite by default, or
a fresh PostgreSQL `Database`), `Client` speaks HTTP/1.1 over one keep-alive
connection, `Findings` collects problems so a script exits non-zero with every
one listed, and `psql` runs SQL through the PostgreSQL client.

Command line (bench/run.sh), `kwbench.py COMMAND ARGS`:
  free-port                        print a free TCP port on 127.0.0.1
  wait-health PORT TIMEOUT_S       wait for GET /health = 200; print the wait in ms
  http PORT METHOD PATH [AUTH] [BODY]  one request; print "<status> <body>"
  sample TSV N SELECTORS NAMES [CREDENTIALS]
                                   N random lines of seed.py's output -> key files
  launch PORT TIMEOUT_S LOG BIN [ARGS...]
                                   start BIN detached; print "<pid> <ms to first 200>"
  startup RUNS PORT TIMEOUT_S BIN [ARGS...]
                                   start BIN RUNS times (environment and cwd as
                                   given), time process start -> first 200 from
                                   /health and -> first 200 from /ready, stop it
                                   with SIGTERM; print JSON. KW_SETTLE_S=S: the
                                   last run waits S s after ready, then its RSS
                                   is read
  latency PORT PATH AUTH COUNT TIMEOUT_S
                                   COUNT sequential requests on one keep-alive
                                   connection; print JSON with per-request ms
  rss PID                          print JSON {rss_kb, hwm_kb} from /proc/PID/status
  pg-url BASE_URL DBNAME           BASE_URL with its database replaced by DBNAME
  wrk-line JSON                    one-line summary of a wrk result
  nginx-config DIR LISTEN KEYWARDEN_PORT UPSTREAM_PORT PLAIN_PORT
                                   write DIR/nginx.conf: docs/examples/nginx.conf with
                                   these ports, a `return 200` upstream, and the same
                                   proxy without auth_request on PLAIN_PORT
  summarize RESULTS.jsonl...       print the markdown tables for results files
"""

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ADMIN = "*:*.reliability-admin-secret"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def health_once(port, timeout=1.0, path="/health"):
    """Status of GET `path` (/health), or None when nothing answers yet."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while b"\r\n" not in data:
                chunk = s.recv(256)
                if not chunk:
                    break
                data += chunk
            parts = data.split(b" ", 2)
            return int(parts[1]) if len(parts) > 1 else None
    except (OSError, ValueError):
        return None


def wait_health(port, timeout_s):
    start = time.perf_counter()
    deadline = start + timeout_s
    while time.perf_counter() < deadline:
        if health_once(port) == 200:
            return (time.perf_counter() - start) * 1000
        time.sleep(0.0005)
    return None


def request(port, method, path, auth=None, body=None, timeout=30):
    client = Client(port, auth=auth, timeout=timeout)
    try:
        return client.request(method, path, body)
    finally:
        client.close()


def sample(tsv, count, selectors_out, names_out, credentials_out=os.devnull):
    with open(tsv, encoding="ascii") as f:
        lines = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    rng = random.Random(42)
    picked = rng.sample(lines, min(count, len(lines)))
    with open(selectors_out, "w") as s, open(names_out, "w") as n, open(credentials_out, "w") as c:
        for selector, credential, name in picked:
            s.write(selector + "\n")
            n.write(name + "\n")
            c.write(credential + "\n")
    return len(picked)


def nginx_config(folder, listen, keywarden, upstream, plain):
    """The README's nginx example (docs/examples/nginx.conf, addresses replaced as
    tests/proxies.rs does), a static upstream, and the same proxy without
    auth_request: everything nginx writes stays in `folder`."""
    with open(os.path.join(ROOT, "docs/examples/nginx.conf")) as f:
        example = f.read()
    for placeholder in ("listen 8080;", "127.0.0.1:4242", "127.0.0.1:3000"):
        if placeholder not in example:
            sys.exit(f"docs/examples/nginx.conf no longer contains {placeholder!r}")
    site = (example.replace("listen 8080;", f"listen 127.0.0.1:{listen};")
            .replace("127.0.0.1:4242", f"127.0.0.1:{keywarden}")
            .replace("127.0.0.1:3000", f"127.0.0.1:{upstream}"))
    d = folder
    config = f"""daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
access_log off;
client_body_temp_path {d}/body;
proxy_temp_path {d}/proxy;
fastcgi_temp_path {d}/fastcgi;
uwsgi_temp_path {d}/uwsgi;
scgi_temp_path {d}/scgi;
# The protected service: nginx itself.
server {{
    listen 127.0.0.1:{upstream};
    location / {{ return 200 "upstream\\n"; }}
}}
# The same proxy without auth_request: what nginx costs on its own.
server {{
    listen 127.0.0.1:{plain};
    location / {{ proxy_pass http://127.0.0.1:{upstream}; }}
}}
{site}
}}
"""
    with open(os.path.join(folder, "nginx.conf"), "w") as f:
        f.write(config)


def stop(process, timeout=15):
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def launch(port, timeout_s, log_path, argv):
    """Starts the server detached (it outlives this helper) and times its start."""
    log = open(log_path, "ab")
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdout=log, stderr=log, start_new_session=True)
    deadline = start + timeout_s
    while time.perf_counter() < deadline and process.poll() is None:
        if health_once(port) == 200:
            print(process.pid, f"{(time.perf_counter() - start) * 1000:.2f}")
            return
        time.sleep(0.0005)
    if process.poll() is None:
        process.kill()
    sys.exit(f"keywarden did not answer /health with 200 (exit status {process.poll()})")


def startup(runs, port, timeout_s, argv, settle_s=0.0):
    """Starts `argv` `runs` times; per run, the time from process start to the
    first 200 from /health (the first answer) and to the first 200 from
    /ready (the credential view loaded). With `settle_s`, the last run stays
    up that long after ready (glibc's freed pages go back to the system
    every 5 s, see src/system.rs) and its resident memory is read then."""
    first, ready, memory = [], [], None
    log = open(os.environ.get("KW_SERVER_LOG", os.devnull), "ab")
    for run in range(runs):
        start = time.perf_counter()
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log)
        answered = loaded = None
        deadline = start + timeout_s
        try:
            while time.perf_counter() < deadline and process.poll() is None:
                if answered is None and health_once(port) == 200:
                    answered = (time.perf_counter() - start) * 1000
                if answered is not None and health_once(port, path="/ready") == 200:
                    loaded = (time.perf_counter() - start) * 1000
                    break
                time.sleep(0.0005)
            if loaded is not None and settle_s and run == runs - 1:
                time.sleep(settle_s)
                with open(f"/proc/{process.pid}/status") as f:
                    memory = {key: int(rest.split()[0]) for key, _, rest in
                              (line.partition(":") for line in f) if key in ("VmRSS", "VmHWM")}
        finally:
            stop(process)
        if loaded is None:
            print(json.dumps({"error": "no 200 from /health and /ready", "exit": process.returncode}))
            sys.exit(1)
        first.append(round(answered, 2))
        ready.append(round(loaded, 2))
        time.sleep(0.2)
    result = {"runs": runs, "median_ms": round(statistics.median(first), 2),
              "min_ms": min(first), "max_ms": max(first), "all_ms": first,
              "ready_median_ms": round(statistics.median(ready), 2),
              "ready_min_ms": min(ready), "ready_max_ms": max(ready), "ready_all_ms": ready}
    if memory:
        result.update({"rss_kb": memory["VmRSS"], "hwm_kb": memory["VmHWM"], "settle_s": settle_s})
    print(json.dumps(result))


def latency(port, path, auth, count, timeout_s):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    times, statuses, size = [], {}, 0
    for _ in range(count):
        start = time.perf_counter()
        conn.request("GET", path, headers={"Authorization": auth})
        response = conn.getresponse()
        body = response.read()
        times.append((time.perf_counter() - start) * 1000)
        statuses[response.status] = statuses.get(response.status, 0) + 1
        size = len(body)
    conn.close()
    ordered = sorted(times)
    p90 = ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
    print(json.dumps({"count": count, "median_ms": round(statistics.median(times), 2),
                      "p90_ms": round(p90, 2), "min_ms": round(ordered[0], 2),
                      "max_ms": round(ordered[-1], 2), "bytes": size,
                      "statuses": {str(k): v for k, v in statuses.items()}}))


def rss(pid):
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    print(json.dumps({"rss_kb": values.get("VmRSS"), "hwm_kb": values.get("VmHWM")}))


def pg_url(base, dbname):
    parts = urllib.parse.urlsplit(base)
    return urllib.parse.urlunsplit(parts._replace(path="/" + dbname))


def fmt_ms(us):
    return f"{us / 1000:.2f}"


def rps(row):
    return row["requests"] / (row["duration_us"] / 1e6)


def summarize(paths):
    """Medians over the runs of each scenario (per binary label); error counts
    are summed. Ratios to GET /health are taken run by run (the same results
    file, binary and run number: minutes apart at most), then their median."""
    rows = []
    for path in paths:
        for line in open(path):
            if line.strip():
                rows.append(dict(json.loads(line), source=path))
    loads = [r for r in rows if r.get("kind") == "wrk"]
    groups = {}
    for r in loads:
        groups.setdefault((r.get("label", ""), r["backend"], r["size"], r["scenario"]), []).append(r)
    health = {(r["source"], r.get("label", ""), r["run"]): rps(r)
              for r in loads if r["scenario"] == "GET /health"}
    out = []
    if groups:
        out.append("| binary | backend | tokens | scenario | runs | req/s (median) | ÷ /health "
                   "(median) | p50 ms | p99 ms | non-2xx (expected) | socket errors | load1 before "
                   "| RSS MiB after warm-up → last run |")
        out.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for (label, backend, size, scenario), runs in groups.items():
            ratios = [rps(r) / health[key] for r in runs
                      if (key := (r["source"], label, r["run"])) in health]
            ratio = f"{statistics.median(ratios):.2f}" if ratios and scenario != "GET /health" else ""
            p50 = statistics.median(r["p50_us"] for r in runs)
            p99 = statistics.median(r["p99_us"] for r in runs)
            status = sum(r["status_errors"] for r in runs)
            total = sum(r["requests"] for r in runs)
            expected = "all" if runs[0].get("expect_status", 200) >= 400 else "0"
            sockets = sum(r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["timeouts"]
                          for r in runs)
            load = ", ".join(str(r.get("load1", "?")) for r in runs)
            warm = [r["rss_kb"] for r in rows if r.get("kind") == "rss" and r.get("scenario") == scenario
                    and r.get("label", "") == label and r["size"] == size]
            last = [r["rss_kb"] for r in runs if r.get("rss_kb")]
            # One server only: across results files the processes differ.
            single = len({r["source"] for r in runs}) == 1
            memory = f"{warm[0] / 1024:.1f} → {last[-1] / 1024:.1f}" if single and warm and last else ""
            out.append(f"| {label or '-'} | {backend} | {size} | {scenario} | {len(runs)} | "
                       f"{statistics.median(rps(r) for r in runs):,.0f} | {ratio} | "
                       f"{fmt_ms(p50)} | {fmt_ms(p99)} | {status}/{total} ({expected}) | "
                       f"{sockets} | {load} | {memory} |")
    # PUT beside pgbench with PUT's transaction shape, paired run by run.
    by_run = {}
    for r in loads:
        by_run.setdefault((r["source"], r.get("label", ""), r["run"]), {})[r["scenario"]] = rps(r)
    for title in ("pgbench, PUT's transaction, no notify", "pgbench, PUT's transaction + pg_notify",
                  "pgbench, 8 PUT shapes per transaction (per PUT)"):
        ratios = [runs["PUT /api/admin/api-tokens/:token"] / runs[title] for runs in by_run.values()
                  if title in runs and "PUT /api/admin/api-tokens/:token" in runs]
        if ratios:
            out.append(f"\nPUT ÷ {title}, same run: "
                       + ", ".join(f"{ratio:.2f}" for ratio in ratios)
                       + f" (median {statistics.median(ratios):.2f})")
    for r in rows:
        kind = r.get("kind")
        if kind == "rss" and "scenario" not in r:
            out.append(f"\nRSS after the load ({r['backend']}, {r['size']} tokens): "
                       f"{r['rss_kb'] / 1024:.1f} MiB (peak {r['hwm_kb'] / 1024:.1f} MiB)")
        elif kind == "startup":
            out.append(f"\nStart to first 200 from /health, existing database ({r['backend']}, "
                       f"{r['size']} tokens): median {r['median_ms']} ms over {r['runs']} runs "
                       f"(min {r['min_ms']}, max {r['max_ms']})")
            if "ready_median_ms" in r:
                out.append(f"\nStart to first 200 from /ready ({r['backend']}, {r['size']} tokens): "
                           f"median {r['ready_median_ms']} ms (min {r['ready_min_ms']}, "
                           f"max {r['ready_max_ms']})")
            if "rss_kb" in r:
                out.append(f"\nRSS {r['settle_s']:g} s after ready ({r['backend']}, {r['size']} "
                           f"tokens): {r['rss_kb'] / 1024:.1f} MiB, {r['rss_kb'] * 1024 / r['size']:.0f} "
                           f"bytes per token (peak {r['hwm_kb'] / 1024:.1f} MiB)")
        elif kind == "first-start":
            out.append(f"\nFirst start after seeding ({r['backend']}, {r['size']} tokens): "
                       f"{r['ms']:.1f} ms")
        elif kind == "list-latency":
            out.append(f"\nGET /api/admin/api-tokens, sequential, one connection ({r['backend']}, "
                       f"{r['size']} tokens, {r['bytes']:,} bytes): median {r['median_ms']} ms, "
                       f"p90 {r['p90_ms']} ms, max {r['max_ms']} ms over {r['count']} requests")
        elif kind == "seed":
            out.append(f"\nSeeding {r['size']} tokens ({r['backend']}): {r['seconds']:.1f} s")
    print("\n".join(out))


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parser(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--short", action="store_true", help="CI mode: finishes in under ~2 minutes")
    p.add_argument("--bin", help="keywarden binary (default: target/release/keywarden, built if missing)")
    p.add_argument("--postgres", metavar="URL",
                   help="run on a fresh PostgreSQL database created next to the one URL names")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    return p


def binary(path=None):
    if path:
        return os.path.abspath(path)
    built = os.path.join(ROOT, "target", "release", "keywarden")
    if not os.path.exists(built):
        log("building the release binary (cargo build --release --locked)")
        subprocess.run(["cargo", "build", "--release", "--locked", "--bin", "keywarden"],
                       cwd=ROOT, check=True)
    return built


class Findings:
    """Problems found so far; `exit()` reports them and sets the exit status."""

    def __init__(self, name):
        self.name = name
        self.problems = []

    def fail(self, message):
        self.problems.append(message)
        log(f"FAIL: {message}")

    def check(self, condition, message):
        if not condition:
            self.fail(message)
        return condition

    def exit(self, summary=""):
        if self.problems:
            print(f"{self.name}: FAILED ({len(self.problems)} problems){': ' + summary if summary else ''}")
            for problem in self.problems[:50]:
                print(f"  - {problem}")
            if len(self.problems) > 50:
                print(f"  … and {len(self.problems) - 50} more")
            sys.exit(1)
        print(f"{self.name}: passed{': ' + summary if summary else ''}")
        sys.exit(0)


class Database:
    """A fresh SQLite file in `folder`, or a fresh PostgreSQL database."""

    def __init__(self, folder, postgres=None):
        self.postgres_base = postgres
        if postgres:
            self.name = f"kwbench_rel_{os.getpid()}_{int(time.time())}"
            psql(postgres, f'CREATE DATABASE "{self.name}"')
            self.url = pg_url(postgres, self.name)
            self.path = None
        else:
            self.name = None
            self.path = os.path.join(folder, "keywarden.db")
            self.url = f"sqlite://{self.path}"

    @property
    def backend(self):
        return "postgres" if self.postgres_base else "sqlite"

    def query(self, sql):
        """Rows of a read-only query, as lists of strings (None for NULL)."""
        if self.path:
            import sqlite3
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=10)
            try:
                return [[None if v is None else str(v) for v in row] for row in conn.execute(sql)]
            finally:
                conn.close()
        out = subprocess.run(
            ["psql", self.url, "-XAtq", "-F", "\x1f", "-R", "\x1e", "-P", "null=\x1d", "-c", sql],
            capture_output=True, text=True, check=True)
        rows = [r for r in out.stdout.split("\x1e") if r.strip("\n")]
        return [[None if v == "\x1d" else v for v in r.strip("\n").split("\x1f")] for r in rows]

    def drop(self):
        if self.postgres_base:
            try:
                psql(self.postgres_base, f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            except subprocess.CalledProcessError as error:
                log(f"could not drop {self.name}: {error}")


def psql(url, sql, env=None):
    """Runs `sql` through psql; its standard output. Raises CalledProcessError."""
    return subprocess.run(["psql", url, "-XAtq", "-c", sql], check=True, capture_output=True,
                          text=True, env=env).stdout


class Server:
    """keywarden on 127.0.0.1 in a temporary directory."""

    def __init__(self, args, env=None, name="reliability", db=None):
        """With `db` (another server's `Database`), a second instance on the
        same database, which its owner drops."""
        self.binary = binary(args.bin)
        self.folder = tempfile.mkdtemp(prefix=f"kw-{name}-")
        self.keep = args.keep
        self.owns_db = db is None
        self.db = db or Database(self.folder, args.postgres)
        self.port = free_port()
        self.env = dict(os.environ)
        self.env.pop("KEYWARDEN_CONFIG", None)
        self.env.update({
            "DATABASE_URL": self.db.url,
            "HTTP_HOST": "127.0.0.1",
            "HTTP_PORT": str(self.port),
            "RUST_LOG": os.environ.get("RUST_LOG", "warn"),
            "INIT_ADMIN_API_TOKENS": ADMIN,
            "UNLEASH_API_TOKENS_LIMIT": "1000000",
        })
        self.env.update(env or {})
        self.log_path = os.path.join(self.folder, "server.log")
        self.process = None

    def start(self, timeout=60):
        logfile = open(self.log_path, "ab")
        self.process = subprocess.Popen([self.binary], cwd=self.folder, env=self.env,
                                        stdout=logfile, stderr=logfile)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"keywarden exited with {self.process.returncode}:\n{self.log_tail()}")
            if self.health() == 200:
                return
            time.sleep(0.01)
        raise RuntimeError(f"keywarden did not become healthy in {timeout}s:\n{self.log_tail()}")

    def health(self):
        return health_once(self.port, timeout=2)

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout=15):
        if self.process:
            stop(self.process, timeout)
        return self.process.returncode if self.process else None

    def kill9(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def log_tail(self, lines=30):
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-lines:]).decode("utf-8", "replace")
        except OSError:
            return ""

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def close(self):
        self.stop()
        if self.owns_db:
            self.db.drop()
        if self.keep:
            log(f"kept {self.folder}")
        else:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Client:
    """One keep-alive HTTP/1.1 connection; reconnects after a failure."""

    def __init__(self, port, auth=None, timeout=10):
        self.port = port
        self.auth = auth
        self.timeout = timeout
        self.conn = None

    def request(self, method, path, body=None, auth=None, headers=None):
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        all_headers = {}
        credential = auth if auth is not None else self.auth
        if credential:
            all_headers["Authorization"] = credential
        if body is not None:
            if not isinstance(body, (bytes, str)):
                body = json.dumps(body)
            all_headers["Content-Type"] = "application/json"
        all_headers.update(headers or {})
        try:
            self.conn.request(method, path, body=body, headers=all_headers)
            response = self.conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        if response.getheader("Connection", "").lower() == "close":
            self.close()
        return response.status, data

    def json(self, method, path, body=None, auth=None):
        status, data = self.request(method, path, body, auth)
        return status, (json.loads(data) if data else None)

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def quote(text):
    return urllib.parse.quote(text, safe="")


def main():
    args = sys.argv[1:]
    if not args:
        sys.exit(__doc__)
    command, rest = args[0], args[1:]
    if command == "free-port":
        print(free_port())
    elif command == "wait-health":
        waited = wait_health(int(rest[0]), float(rest[1]))
        if waited is None:
            sys.exit(1)
        print(f"{waited:.2f}")
    elif command == "http":
        port, method, path = int(rest[0]), rest[1], rest[2]
        auth = rest[3] if len(rest) > 3 and rest[3] else None
        body = rest[4] if len(rest) > 4 else None
        status, data = request(port, method, path, auth, body)
        print(status, data.decode("utf-8", "replace"))
    elif command == "sample":
        print(sample(rest[0], int(rest[1]), *rest[2:5]))
    elif command == "nginx-config":
        nginx_config(rest[0], *(int(port) for port in rest[1:5]))
    elif command == "launch":
        launch(int(rest[0]), float(rest[1]), rest[2], rest[3:])
    elif command == "startup":
        settle = float(os.environ.get("KW_SETTLE_S", "0"))
        startup(int(rest[0]), int(rest[1]), float(rest[2]), rest[3:], settle)
    elif command == "latency":
        latency(int(rest[0]), rest[1], rest[2], int(rest[3]), float(rest[4]))
    elif command == "rss":
        rss(rest[0])
    elif command == "pg-url":
        print(pg_url(rest[0], rest[1]))
    elif command == "wrk-line":
        r = json.loads(rest[0])
        print(f"{rps(r):,.0f} req/s, p50 {r['p50_us'] / 1000:.2f} ms, "
              f"p99 {r['p99_us'] / 1000:.2f} ms, non-2xx {r['status_errors']}")
    elif command == "summarize":
        summarize(rest)
    else:
        sys.exit(f"unknown command {command}\n{__doc__}")


if __name__ == "__main__":
    main()
