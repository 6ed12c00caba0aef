#!/usr/bin/env python3
"""What one page of GET /api/admin/search/events costs at 1k and 1M events
(SQLite), end to end over HTTP and split into its two statements: the page
(`... ORDER BY id DESC LIMIT 50`) and `total` (`SELECT COUNT(*) ...`), each
run on the database the server uses, as the repository writes them.

    python3 bench/search_cost.py [--binary target/debug/keywarden] [--events 1000 1000000]

Seeds the events with SQL (one real token's event as the template, spread
over a year, three types, ten creators), then times each request/statement
(median of --repeat runs, after one warm-up). Prints a Markdown table.
"""
import argparse
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import tempfile
import time
import urllib.request

QUERIES = [
    ("first page", ""),
    ("type", "type=IS:api-token-updated"),
    ("createdBy", "createdBy=IS:actor-3"),
    ("last week", "from=IS:{last_week}&to=IS:{last_day}"),
    ("one day mid-year", "from=IS:{mid}&to=IS:{mid}"),
    ("deep offset (half)", "offset={half}"),
    ("free text", "query=token-42"),
]

# The statements the repository builds (crates/persistence-adapter/src/statements.rs).
WHERE = {
    "": ("", []),
    "type": (" AND event_type IN (?)", ["api-token-updated"]),
    "createdBy": (" AND created_by IN (?)", ["actor-3"]),
    "text": (" AND (LOWER(event_type) LIKE ? ESCAPE '\\' OR LOWER(created_by) LIKE ? ESCAPE '\\'"
             " OR LOWER(token_name) LIKE ? ESCAPE '\\')", ["%token-42%"] * 3),
    "one day": (" AND created_at >= ? AND created_at < ?",
                ["2030-07-01 00:00:00.000+00:00", "2030-07-02 00:00:00.000+00:00"]),
    "last week": (" AND created_at >= ? AND created_at < ?",
                  ["2030-12-24 00:00:00.000+00:00", "2031-01-01 00:00:00.000+00:00"]),
}

# A page with a day range is also bounded by the range's smallest and largest id.
ID_BOUNDS = (" AND id >= (SELECT MIN(id) FROM events WHERE 1 = 1 AND created_at >= ? AND created_at < ?)"
             " AND id <= (SELECT MAX(id) FROM events WHERE 1 = 1 AND created_at >= ? AND created_at < ?)")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seed(db, count):
    conn = sqlite3.connect(db)
    template = conn.execute("SELECT data, selector FROM events WHERE id = 1").fetchone()
    conn.execute("DELETE FROM events")
    step = 365 * 86400 / count
    conn.execute(
        """
        WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?)
        INSERT INTO events (event_type, created_by, created_at, data, pre_data, selector, format, token_name)
        SELECT CASE i % 3 WHEN 0 THEN 'api-token-created' WHEN 1 THEN 'api-token-updated'
                          ELSE 'api-token-deleted' END,
               'actor-' || (i % 10),
               strftime('%Y-%m-%d %H:%M:%f+00:00', '2030-01-01', '+' || CAST(i * ? AS INTEGER) || ' seconds'),
               ?, ?, ?, 1, 'token-' || (i % 1000)
        FROM n
        """,
        (count, step, template[0], template[0], template[1]),
    )
    conn.commit()
    conn.execute("ANALYZE")
    conn.close()


def timed(repeat, work):
    work()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def measure(binary, count, repeat):
    with tempfile.TemporaryDirectory() as d:
        db = os.path.join(d, "kw.db")
        admin = "*:*.bench-admin-credential"
        env = {"DATABASE_URL": f"sqlite://{db}", "INIT_ADMIN_API_TOKENS": admin, "HTTP_HOST": "127.0.0.1",
               "HTTP_PORT": str(free_port()), "RUST_LOG": "warn", "PATH": os.environ.get("PATH", "")}
        subprocess.run([binary, "migrate"], env=env, check=True, capture_output=True)
        server = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{env['HTTP_PORT']}"
        try:
            for _ in range(200):
                try:
                    urllib.request.urlopen(base + "/ready")
                    break
                except OSError:
                    time.sleep(0.05)
            server.terminate()
            server.wait()
            seed(db, count)
            server = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(400):
                try:
                    urllib.request.urlopen(base + "/ready")
                    break
                except OSError:
                    time.sleep(0.05)
            values = {"last_week": "2030-12-24", "last_day": "2030-12-31", "mid": "2030-07-01", "half": count // 2}
            rows = []
            for label, query in QUERIES:
                url = f"{base}/api/admin/search/events?{query.format(**values)}"
                request = urllib.request.Request(url, headers={"Authorization": admin})
                body = json.load(urllib.request.urlopen(request))
                http = timed(repeat, lambda: urllib.request.urlopen(request).read())
                rows.append((label, http, body["total"], len(body["events"])))
            conn = sqlite3.connect(db)
            sql = {}
            for name, (where, params) in WHERE.items():
                bounds, bound_params = (ID_BOUNDS, params * 2) if "created_at" in where else ("", [])
                page = f"SELECT * FROM events WHERE 1 = 1{bounds}{where} ORDER BY id DESC LIMIT 50 OFFSET 0"
                page_params = bound_params + params
                total = f"SELECT COUNT(*) FROM events WHERE 1 = 1{where}"
                sql[name or "none"] = (
                    timed(repeat, lambda: conn.execute(page, page_params).fetchall()),
                    timed(repeat, lambda: conn.execute(total, params).fetchall()),
                )
            conn.close()
            return rows, sql
        finally:
            server.terminate()
            server.wait()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default="target/debug/keywarden")
    parser.add_argument("--events", type=int, nargs="+", default=[1000, 1000000])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    results = {count: measure(args.binary, count, args.repeat) for count in args.events}
    counts = args.events
    print("| request (limit 50, with total) | " + " | ".join(f"{c:,} events: ms (total)" for c in counts) + " |")
    print("|---|" + "---|" * len(counts))
    for i, (label, _) in enumerate(QUERIES):
        cells = [f"{results[c][0][i][1]:.1f} ({results[c][0][i][2]:,})" for c in counts]
        print(f"| {label} | " + " | ".join(cells) + " |")
    print()
    print("| statement (SQLite) | " + " | ".join(f"{c:,}: page ms / total ms" for c in counts) + " |")
    print("|---|" + "---|" * len(counts))
    for name in ["none", "type", "createdBy", "one day", "last week", "text"]:
        cells = [f"{results[c][1][name][0]:.2f} / {results[c][1][name][1]:.2f}" for c in counts]
        print(f"| filter: {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
