"""Shared pieces of the reliability scripts: standard library only.

A `Server` runs the real keywarden binary in a temporary directory on
127.0.0.1 (SQLite by default, or a fresh PostgreSQL database), `Client`
speaks HTTP/1.1 over one keep-alive connection, and `fail`/`check` collect
findings so a script can exit non-zero with every problem listed.
"""

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ADMIN = "*:*.reliability-admin-secret"


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


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
            self.name = f"kwrel_{os.getpid()}_{int(time.time())}"
            psql(postgres, f'CREATE DATABASE "{self.name}"')
            parts = urllib.parse.urlsplit(postgres)
            self.url = urllib.parse.urlunsplit(parts._replace(path="/" + self.name))
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


def psql(url, sql):
    subprocess.run(["psql", url, "-XAtq", "-c", sql], check=True, capture_output=True)


class Server:
    """keywarden on 127.0.0.1 in a temporary directory."""

    def __init__(self, args, env=None, name="reliability"):
        self.binary = binary(args.bin)
        self.folder = tempfile.mkdtemp(prefix=f"kw-{name}-")
        self.keep = args.keep
        self.db = Database(self.folder, args.postgres)
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
        try:
            status, _ = Client(self.port, timeout=2).request("GET", "/health")
            return status
        except OSError:
            return None

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout=15):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
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
