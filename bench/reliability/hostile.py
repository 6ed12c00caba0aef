#!/usr/bin/env python3
"""Bad input: a corpus of hostile requests over raw sockets. None may be
answered with a 5xx, none may crash the server, and afterwards it must still
answer /health and serve a valid PUT.

The corpus: random bytes, valid requests with random bytes flipped, huge and
deeply nested JSON, wrong JSON types, extreme and malformed dates, invalid UTF-8
and NUL characters in bodies and paths, invalid percent-encodings, very long
paths and headers, many headers, contradictory or broken framing
(Content-Length, chunked), odd request lines, methods and HTTP versions — sent
both without credentials and with the admin credential (so bodies get parsed).
A request may go unanswered (the server may close the connection on garbage);
an answer must not be a 5xx.

    bench/reliability/hostile.py [--short] [--postgres URL] [--bin PATH] [--seed N]
"""

import json
import os
import random
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
import kwbench  # noqa: E402
from kwbench import ADMIN, Client, Findings, Server, log  # noqa: E402

TOKENS = "/api/admin/api-tokens"
VERIFY = "/api/verify"
EDGE = "/edge/validate"
VALID_PUT = b'{"expiresAt":"2040-01-01T00:00:00Z"}'


def request(method, target, headers=(), body=b"", version=b"HTTP/1.1", length=True, host=True):
    if isinstance(method, str):
        method = method.encode()
    if isinstance(target, str):
        target = target.encode("utf-8", "surrogateescape")
    lines = [method + b" " + target + b" " + version]
    if host:
        lines.append(b"Host: 127.0.0.1")
    for h in headers:
        lines.append(h if isinstance(h, bytes) else h.encode("utf-8", "surrogateescape"))
    if length and body is not None:
        lines.append(b"Content-Length: " + str(len(body)).encode())
    lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + (body or b"")


def admin(method, target, body=None, content_type="application/json", extra=()):
    headers = [f"Authorization: {ADMIN}"]
    if content_type is not None and body is not None:
        headers.append(f"Content-Type: {content_type}")
    headers.extend(extra)
    return request(method, target, headers, body if body is not None else b"")


def json_bodies():
    deep = 30_000  # within the 64 KiB body limit, far past any sane nesting
    dates = [
        "9999-12-31T23:59:59Z", "0000-01-01T00:00:00Z", "0001-01-01T00:00:00Z",
        "1969-12-31T23:59:59.999Z", "2030-02-30T00:00:00Z", "2030-06-30T23:59:60Z",
        "2030-01-01T00:00:00+99:99", "2030-01-01T00:00:00-23:59", "2030-01-01T00:00:00+23:59",
        "+262143-01-01T00:00:00Z", "-0001-01-01T00:00:00Z", "2030-01-01T00:00:00." + "9" * 20000 + "Z",
        "２０３０-01-01T00:00:00Z", "2030-01-01T00:00:00", "2030-01-01", "", " ", "\u0000",
        "2030-01-01T00:00:00Z\u0000", "2030-01-01t00:00:00z", "2030-01-01 00:00:00Z",
    ]
    bodies = [json.dumps({"expiresAt": d}).encode() for d in dates]
    bodies += [
        b'{"expiresAt":1}', b'{"expiresAt":{}}', b'{"expiresAt":[]}', b'{"expiresAt":true}',
        b'{"expiresAt":null}', b'{"expiresAt":1e999999}', b'{"expiresAt":-0}',
        b'{"expiresAt":18446744073709551616}', b"null", b"true", b"[]", b"{}", b'"x"', b"",
        b"   ", b"\xef\xbb\xbf" + VALID_PUT, b'{"expiresAt":"\xff\xfe"}', b'{"expiresAt":"\\ud800"}',
        b'{"expiresAt":"2030-01-01T00:00:00Z","expiresAt":"2031-01-01T00:00:00Z"}',
        b'{"expiresAt":"2030-01-01T00:00:00Z"', b'{"expiresAt":"2030-01-01T00:00:00Z"}}',
        b"[" * deep + b"]" * deep, b'{"a":' * (deep // 5) + b"1" + b"}" * (deep // 5),
        b'{"x":"' + b"a" * 60_000 + b'"}', b"\x00" * 1000, VALID_PUT + b"\x00",
        b'{"expiresAt":"2030-01-01T00:00:00Z", "' + b"k" * 50_000 + b'": 1}',
    ]
    return bodies


def create_bodies():
    """POST bodies: wrong types, NUL characters, huge and odd values."""
    cases = [
        {"tokenName": "a\u0000b", "type": "backend"},
        {"tokenName": "\u0000", "type": "backend"},
        {"tokenName": "x", "type": "backend", "environment": "\u0000"},
        {"tokenName": "x", "type": "backend", "projects": ["\u0000"]},
        {"tokenName": "x", "type": "backend", "project": "\u0000"},
        {"tokenName": "x" * 60_000, "type": "backend"},
        {"tokenName": "x", "type": "backend", "projects": ["p"] * 10_000},
        {"tokenName": "x", "type": "backend", "projects": []},
        {"tokenName": "x", "type": "backend", "projects": [None]},
        {"tokenName": "x", "type": "backend", "projects": "*"},
        {"tokenName": "x", "type": "ADMIN"},
        {"tokenName": "x", "type": "\u0000"},
        {"tokenName": "x", "type": "backend", "environment": "*"},
        {"tokenName": "x", "type": "backend", "environment": "e" * 50_000},
        {"tokenName": 1, "type": "backend"},
        {"tokenName": ["x"], "type": "backend"},
        {"tokenName": "x", "type": 5},
        {"tokenName": "x", "type": "backend", "expiresAt": "9999-12-31T23:59:59Z"},
        {"tokenName": "x", "type": "backend", "expiresAt": "0000-01-01T00:00:00Z"},
        {"tokenName": "x", "type": "backend", "expiresAt": 0},
        {"username": "x" * 300, "type": "client"},
        {"tokenName": "\ud83d\ude00" * 100, "type": "frontend"},
        {"tokenName": " ", "type": "backend"},
    ]
    return [json.dumps(c).encode() for c in cases] + json_bodies()


def edge_bodies():
    """/edge/validate bodies: non-string entries, too many, huge, nested."""
    cases = [
        {"tokens": [1]}, {"tokens": [None]}, {"tokens": [[]]}, {"tokens": [{}]}, {"tokens": ["a", True]},
        {"tokens": ["x"] * 1001}, {"tokens": ["x"] * 1000}, {"tokens": ["\u0000"]}, {"tokens": [""]},
        {"tokens": ["*:*.x" * 40_000]}, {"tokens": ["\ud83d\ude00" * 1000]}, {"tokens": {}}, {"tokens": "x"},
        {"tokens": None}, {"token": ["x"]}, {"tokens": [ADMIN] * 1000},
    ]
    deep = 30_000
    return [json.dumps(c).encode() for c in cases] + [
        b'{"tokens":' + b"[" * deep + b"]" * deep + b"}", b'{"tokens":["\xff"]}', b'{"tokens":["\ud800"]}',
        b'{"tokens":["' + b"a" * 300_000 + b'"]}', b'{"tokens":["a"]', b"\x00" * 1000,
    ]


def targets():
    """Hostile values of the :token / :name path segment."""
    odd_v2 = "*:development.v2_" + "é" * 11 + "_" + "a" * 43
    odd_v2b = "*:development.v2_a" + "é" * 11 + "_" + "a" * 42
    return [
        "%zz", "%", "%2", "%FF", "%C0%AF", "%ED%A0%80", "%00", "a%00b", "%25", "%2F", "..%2F..%2Fetc",
        "a" * 8_000, "a" * 70_000, "%41" * 5_000, odd_v2, odd_v2b,
        b"\xc3\xa9\xff\xfe",  # raw bytes, not percent-encoded: é, then invalid UTF-8
        "\udcff\udcfe",  # lone surrogates, sent as (invalid) 3-byte sequences "*:*.x", "*:*." + "x" * 20_000, "v2_" * 1000, " ", "a b", "\t", "%20",
        "AAAAAAAAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAAAAAAA=", "////", "", "?", "#", "%3F%23",
    ]


def corpus(rng, short):
    cases = []
    add = lambda label, data: cases.append((label, data))  # noqa: E731

    # Request lines, versions, methods.
    for label, data in [
        ("HTTP/0.9", b"GET /health\r\n\r\n"),
        ("HTTP/9.9", b"GET /health HTTP/9.9\r\nHost: x\r\n\r\n"),
        ("HTTP/1.0 no host", b"GET /health HTTP/1.0\r\n\r\n"),
        ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00" * 64),
        ("lowercase method", request("get", "/health")),
        ("unknown method", request("FOO", TOKENS)),
        ("long method", request("X" * 10_000, "/health")),
        ("CONNECT", request("CONNECT", "127.0.0.1:443")),
        ("OPTIONS *", request("OPTIONS", "*")),
        ("TRACE", request("TRACE", "/health")),
        ("absolute-form", request("GET", "http://127.0.0.1/health")),
        ("extra spaces", b"GET  /health  HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("bare LF", b"GET /health HTTP/1.1\nHost: x\n\n"),
        ("NUL in request line", b"GET /hea\x00lth HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("request line 100k", request("GET", "/" + "a" * 100_000)),
        ("only CRLFs", b"\r\n" * 1000),
        ("empty", b""),
        ("no host", request("GET", "/health", host=False)),
        ("two hosts", request("GET", "/health", ["Host: a"])),
    ]:
        add(label, data)

    # Headers.
    for label, headers in [
        ("auth not UTF-8", [b"Authorization: \xff\xfe\xfd"]),
        ("auth NUL", [b"Authorization: *:*.x\x00y"]),
        ("auth 100k", ["Authorization: " + "a" * 100_000]),
        ("auth 30k", ["Authorization: " + "a" * 30_000]),
        ("bearer unicode", ["Authorization: Bearer é€𝄞"]),
        ("bearer only", ["Authorization: Bearer"]),
        ("two auths", [f"Authorization: {ADMIN}", "Authorization: *:*.other"]),
        ("auth folded", [b"Authorization: *:*.reliability-admin-\r\n secret"]),
        ("header without colon", [b"Authorization"]),
        ("header NUL name", [b"Auth\x00orization: x"]),
        ("space before colon", [b"Authorization : x"]),
        ("many headers", [f"X-H{i}: {i}" for i in range(2_000)]),
        ("huge header", ["X-Big: " + "b" * 200_000]),
        ("content-type utf-16", [f"Authorization: {ADMIN}", "Content-Type: application/json; charset=utf-16"]),
        ("content-type huge", [f"Authorization: {ADMIN}", "Content-Type: application/" + "j" * 10_000 + "+json"]),
        ("expect continue", [f"Authorization: {ADMIN}", "Content-Type: application/json", "Expect: 100-continue"]),
        ("expect odd", [f"Authorization: {ADMIN}", "Expect: 999-nope"]),
    ]:
        add(f"GET list, {label}", request("GET", TOKENS, headers))
        add(f"verify, {label}", request("GET", VERIFY, headers))
        add(f"PUT, {label}", request("PUT", f"{TOKENS}/AAAAAAAAAAAAAAAAAAAAAA", headers, VALID_PUT))

    # Framing.
    auth = f"Authorization: {ADMIN}"
    ctype = "Content-Type: application/json"
    put = f"{TOKENS}/AAAAAAAAAAAAAAAAAAAAAA"
    for label, data in [
        ("CL larger than body", request("PUT", put, [auth, ctype, "Content-Length: 500"], VALID_PUT, length=False)),
        ("CL smaller than body", request("PUT", put, [auth, ctype, "Content-Length: 5"], VALID_PUT, length=False)),
        ("CL negative", request("PUT", put, [auth, ctype, "Content-Length: -1"], VALID_PUT, length=False)),
        ("CL huge", request("PUT", put, [auth, ctype, "Content-Length: 99999999999999999999"], VALID_PUT, length=False)),
        ("CL twice, differing", request("PUT", put, [auth, ctype, "Content-Length: 5", "Content-Length: 36"], VALID_PUT, length=False)),
        ("CL not a number", request("PUT", put, [auth, ctype, "Content-Length: abc"], VALID_PUT, length=False)),
        ("CL 1 GiB declared", request("PUT", put, [auth, ctype, "Content-Length: 1073741824"], VALID_PUT, length=False)),
        ("chunked", request("PUT", put, [auth, ctype, "Transfer-Encoding: chunked"],
                            b"24\r\n" + VALID_PUT + b"\r\n0\r\n\r\n", length=False)),
        ("chunked broken size", request("PUT", put, [auth, ctype, "Transfer-Encoding: chunked"],
                                        b"zz\r\n" + VALID_PUT + b"\r\n0\r\n\r\n", length=False)),
        ("chunked huge size", request("PUT", put, [auth, ctype, "Transfer-Encoding: chunked"],
                                      b"ffffffffffffffffff\r\nab\r\n0\r\n\r\n", length=False)),
        ("chunked + CL", request("PUT", put, [auth, ctype, "Transfer-Encoding: chunked", "Content-Length: 3"],
                                 b"24\r\n" + VALID_PUT + b"\r\n0\r\n\r\n", length=False)),
        ("TE gzip", request("PUT", put, [auth, ctype, "Transfer-Encoding: gzip"], VALID_PUT, length=False)),
        ("content-encoding gzip", request("PUT", put, [auth, ctype, "Content-Encoding: gzip"], VALID_PUT)),
        ("body on GET", request("GET", TOKENS, [auth, ctype], b"[" * 60_000)),
        ("1 MiB body", request("PUT", put, [auth, ctype], b"[" * (1 << 20))),
        ("pipelined 50", b"".join(request("GET", "/health").replace(b"Connection: close\r\n", b"")
                                  for _ in range(49)) + request("GET", "/health")),
        ("pipelined garbage", request("GET", "/health").replace(b"Connection: close\r\n", b"") + b"\x00\xff" * 100),
    ]:
        add(label, data)

    # Bodies, with credentials so they are parsed.
    for body in json_bodies():
        add(f"PUT body {body[:40]!r}", admin("PUT", put, body))
        add(f"PUT body text/plain {body[:30]!r}", admin("PUT", put, body, "text/plain"))
    for body in create_bodies():
        add(f"POST body {body[:40]!r}", admin("POST", TOKENS, body))

    # The verification routes: Edge's bodies (no credential needed), and
    # /api/verify's scope in the query string, with any method.
    for body in edge_bodies() + json_bodies():
        add(f"edge body {body[:40]!r}", request("POST", EDGE, ["Content-Type: application/json"], body))
    add("edge text/plain", request("POST", EDGE, ["Content-Type: text/plain"], b'{"tokens":[]}'))
    for query in ["type=", "type=%00", "type=" + "t" * 7_000, "type=admin,,", "environment=%FF", "project=%zz",
                  "project=" + "&project=p" * 1_000, "environment=*", "project=*", "type=admin&type=admin",
                  "%zz", "=", "&&&", "x", "type=backend&environment=development&project=default"]:
        add(f"verify ?{query[:30]}", admin("GET", f"{VERIFY}?{query}"))
    for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "FOO"]:
        add(f"verify {method}", admin(method, f"{VERIFY}?type=admin", b"[" * 60_000))

    # Path segments, on every route that takes one.
    for target in targets():
        raw = target if isinstance(target, bytes) else target.encode("utf-8", "surrogatepass")
        path = f"{TOKENS}/".encode() + raw
        add(f"GET name {target[:30]!r}", admin("GET", path))
        add(f"PUT token {target[:30]!r}", admin("PUT", path, VALID_PUT))
        add(f"DELETE token {target[:30]!r}", admin("DELETE", path))
        add(f"GET unauthenticated {target[:30]!r}", request("GET", path))

    # Query strings.
    for query in ["limit=-1", "limit=1e3", "limit=99999999999999999999999", "limit=", "limit=abc",
                  "type=%00", "type=%FF", "type=" + "t" * 20_000, "limit=1000&limit=5", "type=a&type=b",
                  "%zz", "limit=%00", "&&&", "=", "limit=0", "type=api-token-created%00"]:
        add(f"events ?{query[:30]}", admin("GET", f"/api/admin/events?{query}"))
        add(f"list ?{query[:30]}", admin("GET", f"{TOKENS}?{query}"))

    # Random bytes and mutated valid requests.
    valid = [admin("PUT", put, VALID_PUT), admin("POST", TOKENS, b'{"tokenName":"m","type":"backend"}'),
             admin("GET", "/api/admin/events?limit=5"), request("GET", "/health"),
             admin("GET", f"{VERIFY}?type=admin&environment=development&project=default"),
             request("POST", EDGE, ["Content-Type: application/json"], json.dumps({"tokens": [ADMIN, "x"]}).encode())]
    for i in range(200 if short else 2_000):
        add(f"random bytes #{i}", rng.randbytes(rng.choice([1, 16, 200, 1500, 4096, 20_000])))
    for i in range(300 if short else 3_000):
        data = bytearray(rng.choice(valid))
        for _ in range(rng.randint(1, 8)):
            position = rng.randrange(len(data))
            choice = rng.random()
            if choice < 0.5:
                data[position] = rng.randrange(256)
            elif choice < 0.75:
                del data[position:position + rng.randint(1, 20)]
            else:
                data[position:position] = rng.randbytes(rng.randint(1, 50))
        add(f"mutated #{i}", bytes(data))
    return cases


def send(port, data, timeout):
    """The status code of the answer, or None when there was none."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may stop reading early (e.g. an oversized head)
        received = b""
        deadline = time.monotonic() + timeout
        try:
            while b"\r\n" not in received and time.monotonic() < deadline:
                chunk = s.recv(4096)
                if not chunk:
                    break
                received += chunk
        except (socket.timeout, ConnectionResetError):
            pass
    parts = received.split(b" ", 2)
    if len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1].isdigit():
        return int(parts[1])
    return None


def main():
    parser = kwbench.parser(__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=20261128, help="random seed for the corpus")
    args = parser.parse_args()
    findings = Findings("hostile")
    rng = random.Random(args.seed)
    cases = corpus(rng, args.short)
    statuses = {}
    with Server(args, name="hostile") as server:
        log(f"{server.db.backend}: {len(cases)} hostile requests (seed {args.seed})")
        server.start()
        began = time.monotonic()
        for n, (label, data) in enumerate(cases, 1):
            try:
                status = send(server.port, data, timeout=3)
            except OSError as error:
                status = None
                if not server.alive():
                    findings.fail(f"the server died on {label!r}: {error}")
                    break
            statuses[status] = statuses.get(status, 0) + 1
            if status is not None and status >= 500:
                findings.fail(f"{label!r} answered {status}")
            if n % 250 == 0:
                if not findings.check(server.health() == 200, f"/health failed after {label!r}"):
                    break
        elapsed = time.monotonic() - began
        findings.check(server.alive(), "the server is not running any more")
        findings.check(server.health() == 200, "/health does not answer 200 afterwards")
        client = Client(server.port, ADMIN)
        status, body = client.json("POST", TOKENS, {"tokenName": "after", "type": "backend"})
        if findings.check(status == 201, f"a valid POST afterwards answered {status}"):
            selector = body["secret"].split("v2_")[1][:22]
            status, _ = client.request("PUT", f"{TOKENS}/{selector}", {"expiresAt": "2040-01-01T00:00:00Z"})
            findings.check(status == 200, f"a valid PUT afterwards answered {status}")
        findings.check("panicked" not in server.log_text(), "the server log shows a panic:\n" + server.log_tail())
    summary = ", ".join(f"{k if k else 'no answer'}: {v}" for k, v in
                        sorted(statuses.items(), key=lambda kv: (kv[0] is None, kv[0] or 0)))
    findings.exit(f"{len(cases)} requests in {elapsed:.0f}s ({summary})")


if __name__ == "__main__":
    main()
