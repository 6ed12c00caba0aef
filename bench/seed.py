#!/usr/bin/env python3
"""Preload keywarden's database with N backend tokens, directly in SQL.

Creating a million tokens through the API would take hours, so this writes the
rows the server itself would write for `POST /api/admin/api-tokens` with
`{"tokenName": "bench-<i>", "type": "backend", "environment": "development"}`:

* `api_tokens`: selector (base64url-no-pad of 16 random bytes, 22 chars),
  verifier (SHA-256 of the whole credential `*:development.v2_<selector>_<random>`,
  where random is base64url-no-pad of 32 random bytes), token_name, token_type
  'backend', all_projects true, environment 'development', expires_at NULL,
  created_at (UTC, millisecond precision), seen_at NULL, revision 1;
* no `api_token_projects` rows (all-projects tokens have none);
* one `api-token-created` event per token (unless --no-events), its `data` the
  token's JSON in stored-event format 1 (`TokenJsonV1` in the persistence
  adapter's `stored_event.rs`), its `selector` the token's selector. On a
  SQLite database from before the `selector` column (commit f91b52f and
  earlier: the baseline of before/after benchmarks) the column is left out.

Timestamps on SQLite are TEXT in diesel's `%F %T%.f%:z` format (chrono's `%.f`
prints nothing for a whole second and 3 digits for whole milliseconds), e.g.
`2026-11-28 10:00:00.123+00:00`; on PostgreSQL they go in as timestamptz.

The database must already be migrated (start keywarden on it once) and the
server must not be running, or must be restarted afterwards: it loads every
credential into memory at start.

Writes one line per token to --out: `<selector>\t<credential>\t<tokenName>`.

Standard library only (PostgreSQL goes through the `psql` client, COPY FROM STDIN).

    bench/seed.py --sqlite /tmp/kw/keywarden.db --count 100000 --out /tmp/kw/tokens.tsv
    bench/seed.py --postgres postgres://postgres@127.0.0.1:5432/kwbench --count 1000 --out t.tsv
"""

import argparse
import base64
import datetime as dt
import hashlib
import json
import os
import secrets
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import kwbench  # noqa: E402

ENVIRONMENT = "development"
TOKEN_TYPE = "backend"
ACTOR = "admin"  # the name of the bootstrap admin token that "created" them
BATCH = 20_000


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def new_credential():
    selector = b64(secrets.token_bytes(16))
    random = b64(secrets.token_bytes(32))
    assert len(selector) == 22 and len(random) == 43
    credential = f"*:{ENVIRONMENT}.v2_{selector}_{random}"
    return selector, credential, hashlib.sha256(credential.encode("ascii")).digest()


def sqlite_time(at: dt.datetime) -> str:
    """diesel's TimestamptzSqlite encoding of a millisecond-truncated UTC instant."""
    text = at.strftime("%Y-%m-%d %H:%M:%S")
    if at.microsecond:
        text += f".{at.microsecond // 1000:03d}"
    return text + "+00:00"


def postgres_time(at: dt.datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S") + f".{at.microsecond // 1000:03d}+00"


def json_time(at: dt.datetime) -> str:
    """keywarden's `format_millis`: RFC 3339, milliseconds, `Z`."""
    return at.strftime("%Y-%m-%dT%H:%M:%S") + f".{at.microsecond // 1000:03d}Z"


def snapshot(selector: str, name: str, created: dt.datetime) -> str:
    """Stored-event format 1 (`TokenJsonV1`): field order as the struct declares."""
    return json.dumps(
        {
            "secret": selector,
            "tokenName": name,
            "type": TOKEN_TYPE,
            "project": "*",
            "projects": ["*"],
            "environment": ENVIRONMENT,
            "expiresAt": None,
            "createdAt": json_time(created),
            "seenAt": None,
            "alias": None,
            "secure": True,
        },
        separators=(",", ":"),
    )


def generate(count: int, prefix: str, start: dt.datetime):
    """Yields (selector, credential, verifier, name, created_at) with distinct,
    increasing creation instants one millisecond apart."""
    for i in range(count):
        selector, credential, verifier = new_credential()
        created = start + dt.timedelta(milliseconds=i)
        yield selector, credential, verifier, f"{prefix}{i:07d}", created


def seed_sqlite(path, count, prefix, start, out, events):
    if not os.path.exists(path):
        sys.exit(f"seed.py: {path} does not exist: start keywarden on it once so it is migrated")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 5000")
    (env,) = conn.execute(
        "SELECT count(*) FROM environments WHERE name = ?", (ENVIRONMENT,)
    ).fetchone()
    if env != 1:
        sys.exit(f"seed.py: environment {ENVIRONMENT!r} missing: is the database migrated and synced?")
    conn.execute("PRAGMA synchronous = OFF")
    # The same JSON either way; only the column is new (see the module doc).
    with_selector = any(column[1] == "selector" for column in conn.execute("PRAGMA table_info(events)"))
    event_columns = "event_type, created_by, created_at, data, pre_data" + (", selector" if with_selector else "")
    event_values = "'api-token-created', ?, ?, ?, NULL" + (", ?" if with_selector else "")
    now = sqlite_time(start)
    done = 0
    rows, event_rows = [], []

    def flush():
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO api_tokens (selector, verifier, token_name, token_type, all_projects,"
            " environment, expires_at, created_at, seen_at, revision)"
            " VALUES (?, ?, ?, ?, 1, ?, NULL, ?, NULL, 1)",
            rows,
        )
        if event_rows:
            conn.executemany(
                f"INSERT INTO events ({event_columns}) VALUES ({event_values})",
                event_rows,
            )
        conn.execute("COMMIT")
        rows.clear()
        event_rows.clear()

    for selector, credential, verifier, name, created in generate(count, prefix, start):
        out.write(f"{selector}\t{credential}\t{name}\n")
        rows.append((selector, verifier, name, TOKEN_TYPE, ENVIRONMENT, sqlite_time(created)))
        if events:
            event = (ACTOR, now, snapshot(selector, name, created))
            event_rows.append(event + (selector,) if with_selector else event)
        done += 1
        if len(rows) >= BATCH:
            flush()
    if rows:
        flush()
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("ANALYZE")
    conn.close()
    return done


def copy_escape(text: str) -> str:
    return (
        text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    )


def seed_postgres(url, count, prefix, start, out, events):
    """Streams COPY data into one psql session (one transaction)."""
    env = dict(os.environ, PGOPTIONS="-c synchronous_commit=off")
    try:
        found = kwbench.psql(url, f"SELECT count(*) FROM environments WHERE name = '{ENVIRONMENT}'", env)
    except subprocess.CalledProcessError as error:
        sys.exit(f"seed.py: cannot query the database: {error.stderr.strip()}")
    if found.strip() != "1":
        sys.exit(f"seed.py: cannot find environment {ENVIRONMENT!r}")
    psql = subprocess.Popen(
        ["psql", url, "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "-f", "-"],
        stdin=subprocess.PIPE, text=True, env=env,
    )
    pipe = psql.stdin
    pipe.write(
        "COPY api_tokens (selector, verifier, token_name, token_type, all_projects, environment,"
        " expires_at, created_at, seen_at, revision) FROM STDIN;\n"
    )
    done = 0
    now = postgres_time(start)
    # Events go to a spill file and follow the tokens in the same transaction.
    with tempfile.TemporaryFile("w+", encoding="utf-8") as spill:
        for selector, credential, verifier, name, created in generate(count, prefix, start):
            out.write(f"{selector}\t{credential}\t{name}\n")
            pipe.write(
                f"{selector}\t\\\\x{verifier.hex()}\t{copy_escape(name)}\t{TOKEN_TYPE}\tt\t"
                f"{ENVIRONMENT}\t\\N\t{postgres_time(created)}\t\\N\t1\n"
            )
            if events:
                spill.write(
                    f"api-token-created\t{ACTOR}\t{now}\t"
                    f"{copy_escape(snapshot(selector, name, created))}\t\\N\t{selector}\n"
                )
            done += 1
        pipe.write("\\.\n")
        if events:
            pipe.write(
                "COPY events (event_type, created_by, created_at, data, pre_data, selector)"
                " FROM STDIN;\n"
            )
            spill.seek(0)
            for line in spill:
                pipe.write(line)
            pipe.write("\\.\n")
    pipe.write("ANALYZE api_tokens;\nANALYZE events;\n")
    pipe.close()
    if psql.wait() != 0:
        sys.exit("seed.py: psql failed")
    return done


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--sqlite", metavar="PATH", help="migrated SQLite file (server stopped)")
    target.add_argument("--postgres", metavar="URL", help="migrated PostgreSQL database")
    parser.add_argument("--count", type=int, required=True, help="tokens to insert")
    parser.add_argument("--out", required=True, help="file to write selector, credential, name to")
    parser.add_argument("--prefix", default="bench-", help="token name prefix (default bench-)")
    parser.add_argument("--no-events", action="store_true", help="skip the api-token-created events")
    args = parser.parse_args()

    start = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(
        milliseconds=args.count + 1000
    )
    began = time.monotonic()
    with open(args.out, "w", encoding="ascii") as out:
        if args.sqlite:
            done = seed_sqlite(args.sqlite, args.count, args.prefix, start, out, not args.no_events)
        else:
            done = seed_postgres(args.postgres, args.count, args.prefix, start, out, not args.no_events)
    print(f"seed.py: inserted {done} tokens in {time.monotonic() - began:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
