#!/usr/bin/env bash
# keywarden HTTP benchmarks: builds the release binary, starts it on a fresh
# database in a temporary directory (SQLite, or PostgreSQL with --postgres),
# preloads N tokens with bench/seed.py and drives it with wrk on the same
# machine over loopback. Every load run is bounded in time; the server and the
# temporary database are removed on exit.
#
#   bench/run.sh                         # SQLite, 1,000 tokens
#   bench/run.sh --size 1000000          # SQLite, 1M tokens
#   bench/run.sh --postgres postgres://postgres@127.0.0.1:5432/postgres --size 1000
#   bench/run.sh --size 10000 --scenarios list-latency   # only the list latency
#   bench/run.sh --size 1000000 --scenarios health,verify --no-events
#   bench/run.sh --scenarios nginx,nginx-auth            # nginx alone vs nginx + auth_request
#
# Options (defaults in brackets):
#   --size N             tokens to preload [1000]
#   --postgres URL       use PostgreSQL: a fresh database is created next to the
#                        one URL names, and dropped afterwards
#   --duration S         seconds per measured wrk run [10]
#   --warmup S           seconds of discarded warm-up per scenario [3]
#   --runs R             measured rounds; each round runs every load scenario once,
#                        in turn, so a ratio (e.g. verify ÷ health) is taken from
#                        runs minutes apart; medians are reported [3]
#   --connections C      wrk connections [32]
#   --threads T          wrk threads [2]
#   --startup-runs R     start-ups timed on the existing database [21]
#   --scenarios LIST     comma-separated, from: health, unauth (a rejected credential),
#                        name, list, put, verify (GET /api/verify, a valid backend
#                        token, default scope), edge1, edge10, edge100 (POST
#                        /edge/validate with 1, 10, 100 valid credentials), nginx
#                        (nginx alone in front of a static upstream), nginx-auth
#                        (the same with docs/examples/nginx.conf's auth_request to
#                        keywarden), pgbench, pgbench-notify, pgbench-batch8 (PostgreSQL
#                        only: pgbench on the same database with PUT's transaction
#                        shape, without and with a pg_notify in it, and 8 of them in
#                        one transaction, each in a savepoint: what group commit
#                        could gain; --pg-clients clients), list-latency,
#                        startup (time to the first answer and to /ready, and RSS
#                        6 s after ready on the last start) [all but the nginx and
#                        pgbench ones]
#   --pg-clients N       pgbench clients, as many as keywarden's pool [8]
#   --bin PATH           use this keywarden binary instead of building one
#   --label NAME         recorded with every measurement, to tell binaries apart
#                        when summarising several runs (bench/compare.sh)
#   --no-events          seed without the api-token-created events (faster at 1M)
#   --out DIR            where results go [bench/results/<date>-<backend>-<size>]
#   --max-wait S         how long to wait for other compiles to finish before
#                        each measurement (recorded either way) [300]
#   --keep               keep the temporary directory (database, logs)
#
# Output: DIR/results.jsonl (one JSON object per measurement, with the load
# average before it) and DIR/summary.md (medians), also printed at the end.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
KW="$ROOT/bench/lib/kwbench.py"
LUA="$ROOT/bench/wrk/keywarden.lua"

SIZE=1000
PG_BASE=""
DURATION=10
WARMUP=3
RUNS=3
CONNECTIONS=32
THREADS=2
STARTUP_RUNS=21
PG_CLIENTS=8
SCENARIOS="health,unauth,name,list,put,verify,edge1,edge10,edge100,list-latency,startup"
BIN=""
LABEL=""
SEED_ARGS=()
OUT=""
MAX_WAIT=300
KEEP=0
ADMIN='*:*.bench-admin-secret'
PUT_BODY='{"expiresAt":"2040-01-01T00:00:00Z"}'

usage() { sed -n '2,/^set -euo/p' "$0" | sed 's/^# \{0,1\}//; /^set -euo/d'; exit "${1:-0}"; }

while (($#)); do
  case "$1" in
    --size) SIZE="$2"; shift 2 ;;
    --postgres) PG_BASE="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    --warmup) WARMUP="$2"; shift 2 ;;
    --runs) RUNS="$2"; shift 2 ;;
    --connections) CONNECTIONS="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    --startup-runs) STARTUP_RUNS="$2"; shift 2 ;;
    --pg-clients) PG_CLIENTS="$2"; shift 2 ;;
    --scenarios) SCENARIOS="$2"; shift 2 ;;
    --bin) BIN="$2"; shift 2 ;;
    --label) LABEL="$2"; shift 2 ;;
    --no-events) SEED_ARGS=(--no-events); shift ;;
    --out) OUT="$2"; shift 2 ;;
    --max-wait) MAX_WAIT="$2"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage 0 ;;
    *) echo "run.sh: unknown option $1" >&2; usage 2 ;;
  esac
done

KNOWN=",health,unauth,name,list,put,verify,edge1,edge10,edge100,nginx,nginx-auth,pgbench,pgbench-notify,pgbench-batch8,list-latency,startup,"
for scenario_name in ${SCENARIOS//,/ }; do
  [[ "$KNOWN" == *",$scenario_name,"* ]] || { echo "run.sh: unknown scenario $scenario_name" >&2; usage 2; }
  if [[ "$scenario_name" == pgbench* && -z "$PG_BASE" ]]; then
    echo "run.sh: scenario $scenario_name needs --postgres" >&2; exit 2
  fi
done

BACKEND=sqlite
[[ -n "$PG_BASE" ]] && BACKEND=postgres
OUT="${OUT:-$ROOT/bench/results/$(date -u +%Y%m%d-%H%M%S)-$BACKEND-$SIZE}"
mkdir -p "$OUT"
RESULTS="$OUT/results.jsonl"
: >"$RESULTS"

log() { printf '[run.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
has() { [[ ",$SCENARIOS," == *",$1,"* ]]; }

# ---- tools ------------------------------------------------------------------
if ! command -v wrk >/dev/null; then
  log "installing wrk (Debian package)"
  if [[ $EUID -eq 0 ]]; then
    apt-get update -qq && apt-get install -y -qq wrk >/dev/null
  else
    sudo apt-get update -qq && sudo apt-get install -y -qq wrk >/dev/null
  fi
fi
command -v python3 >/dev/null || { echo "run.sh: python3 is required" >&2; exit 1; }
if has nginx || has nginx-auth; then
  [[ -x /usr/sbin/nginx ]] || { echo "run.sh: the nginx scenarios need /usr/sbin/nginx (apt-get install nginx)" >&2; exit 1; }
fi
if [[ -n "$PG_BASE" ]]; then command -v psql >/dev/null || { echo "run.sh: psql is required" >&2; exit 1; }; fi

BIN_NOTE="built by run.sh from the work tree"
if [[ -n "$BIN" ]]; then BIN_NOTE="given with --bin ($BIN)"; fi
if [[ -z "$BIN" ]]; then
  log "building the release binary"
  (cd "$ROOT" && cargo build --release --locked --bin keywarden)
  BIN="$ROOT/target/release/keywarden"
fi
BIN="$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")"
[[ -x "$BIN" ]] || { echo "run.sh: no binary at $BIN" >&2; exit 1; }

# ---- the server ---------------------------------------------------------------
TMP="$(mktemp -d "${TMPDIR:-/tmp}/kwbench.XXXXXX")"
PORT="$(python3 "$KW" free-port)"
SERVER_PID=""
NGINX_PID=""
PG_DB=""

stop_server() {
  [[ -n "$SERVER_PID" ]] || return 0
  kill -TERM "$SERVER_PID" 2>/dev/null || true
  for _ in $(seq 1 150); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}

cleanup() {
  local status=$?
  [[ -n "$NGINX_PID" ]] && kill -TERM "$NGINX_PID" 2>/dev/null
  stop_server
  if [[ -n "$PG_DB" ]]; then
    psql "$PG_BASE" -XAtq -c "DROP DATABASE IF EXISTS \"$PG_DB\" WITH (FORCE)" >/dev/null 2>&1 || true
  fi
  if ((KEEP)); then log "kept $TMP"; else rm -rf "$TMP"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ -n "$PG_BASE" ]]; then
  PG_DB="kwbench_$$_$RANDOM"
  psql "$PG_BASE" -XAtq -c "CREATE DATABASE \"$PG_DB\"" >/dev/null
  DATABASE_URL="$(python3 "$KW" pg-url "$PG_BASE" "$PG_DB")"
else
  DATABASE_URL="sqlite://$TMP/keywarden.db"
fi

export DATABASE_URL HTTP_HOST=127.0.0.1 HTTP_PORT="$PORT" RUST_LOG=warn \
  INIT_ADMIN_API_TOKENS="$ADMIN" UNLEASH_API_TOKENS_LIMIT=100000000 \
  KW_SERVER_LOG="$TMP/server.log"
unset KEYWARDEN_CONFIG

# Starts keywarden in the background (cwd: the temp dir); STARTED_MS is the
# time from process start to the first 200 from /health.
STARTED_MS=""
start_server() {
  local launched
  if ! launched="$(cd "$TMP" && python3 "$KW" launch "$PORT" 600 "$TMP/server.log" "$BIN")"; then
    echo "run.sh: keywarden did not become healthy; its log:" >&2
    tail -n 30 "$TMP/server.log" >&2
    exit 1
  fi
  read -r SERVER_PID STARTED_MS <<<"$launched"
}

record() { echo "$1" >>"$RESULTS"; }

# Waits (bounded) while another process compiles, then prints the 1-minute load.
quiet_load() {
  local waited=0
  while pgrep -x rustc >/dev/null || pgrep -x cc1 >/dev/null || pgrep -x cc1plus >/dev/null; do
    if ((waited >= MAX_WAIT)); then
      log "a compiler is still running after ${MAX_WAIT}s; measuring anyway (load recorded)"
      break
    fi
    ((waited == 0)) && log "waiting for another process's compile to finish"
    sleep 5
    waited=$((waited + 5))
  done
  cut -d' ' -f1 /proc/loadavg
}

# ---- 1. migrate an empty database and bootstrap the admin token ---------------
log "backend $BACKEND, $SIZE tokens, port $PORT, temp $TMP"
start_server
stop_server

# ---- 2. preload the tokens ----------------------------------------------------
log "seeding $SIZE tokens"
seed_start=$(date +%s%N)
if [[ -n "$PG_BASE" ]]; then
  python3 "$ROOT/bench/seed.py" --postgres "$DATABASE_URL" --count "$SIZE" --out "$TMP/tokens.tsv" "${SEED_ARGS[@]}"
else
  python3 "$ROOT/bench/seed.py" --sqlite "$TMP/keywarden.db" --count "$SIZE" --out "$TMP/tokens.tsv" "${SEED_ARGS[@]}"
fi
seed_ms=$(( ($(date +%s%N) - seed_start) / 1000000 ))
record "{\"kind\":\"seed\",\"backend\":\"$BACKEND\",\"size\":$SIZE,\"seconds\":$((seed_ms / 1000)).$(printf %03d $((seed_ms % 1000)))}"
python3 "$KW" sample "$TMP/tokens.tsv" 10000 "$TMP/selectors.txt" "$TMP/names.txt" "$TMP/credentials.txt" >/dev/null

# PUT's transaction as keywarden runs it on PostgreSQL (READ COMMITTED: BEGIN,
# the token row FOR UPDATE, the expiry UPDATE, the audit event INSERT, COMMIT),
# on the same tables, rows chosen at random; the row is found by id rather
# than by its selector (both a unique B-tree lookup). The -notify variant adds
# the pg_notify that keywarden sent inside every write before issue 16.
if has pgbench || has pgbench-notify || has pgbench-batch8; then
  command -v pgbench >/dev/null || { echo "run.sh: the pgbench scenarios need pgbench" >&2; exit 1; }
  MAX_ID="$(psql "$DATABASE_URL" -XAtq -c 'SELECT max(id) FROM api_tokens')"
  # A space after each colon: pgbench would read `:null` as a variable.
  EVENT_JSON='{"secret": "AAAAAAAAAAAAAAAAAAAAAA", "tokenName": "bench-000000", "type": "backend", "project": "*", "projects": ["*"], "environment": "development", "expiresAt": "2040-01-01T00:00:00.000Z", "createdAt": "2026-12-04T00:00:00.000Z", "seenAt": null, "createdBy": "admin"}'
  put_shape() { # the statements of one PUT, on the row with id :id
    echo 'SELECT id, selector, verifier, token_name, token_type, all_projects, environment, expires_at, created_at, seen_at, revision, successor FROM api_tokens WHERE id = :id FOR UPDATE;'
    echo "UPDATE api_tokens SET expires_at = '2040-01-01T00:00:00Z', revision = revision + 1 WHERE id = :id;"
    echo "INSERT INTO events (event_type, created_by, created_at, data, pre_data, selector, format, token_name, created_by_token_id) VALUES ('api-token-updated', 'admin', now(), '$EVENT_JSON', '$EVENT_JSON', 'AAAAAAAAAAAAAAAAAAAAAA', 1, 'bench-000000', 'BBBBBBBBBBBBBBBBBBBBBB');"
  }
  for variant in plain notify; do
    {
      echo '\set id random(1, :max_id)'
      echo 'BEGIN;'
      put_shape
      [[ "$variant" == notify ]] && echo "SELECT pg_notify('kwbench', 'AAAAAAAAAAAAAAAAAAAAAA');"
      echo 'END;'
    } >"$TMP/pgbench-$variant.sql"
  done
  {
    echo 'BEGIN;'
    for i in 1 2 3 4 5 6 7 8; do
      echo '\set id random(1, :max_id)'
      echo "SAVEPOINT w$i;"
      put_shape
      echo "RELEASE SAVEPOINT w$i;"
    done
    echo 'END;'
  } >"$TMP/pgbench-batch8.sql"
fi

# ---- 3. start on the seeded database and check the seed is what the server expects
start_server
record "{\"kind\":\"first-start\",\"backend\":\"$BACKEND\",\"size\":$SIZE,\"ms\":$STARTED_MS}"
log "serving $SIZE seeded tokens after ${STARTED_MS} ms"
IFS=$'\t' read -r sel cred name < <(head -n 1 "$TMP/tokens.tsv")
read -r status body < <(python3 "$KW" http "$PORT" GET "/api/admin/api-tokens/$name" "$ADMIN")
[[ "$status" == 200 && "$body" == *"\"secret\":\"$sel\""* ]] || { echo "run.sh: seeded token $name not readable: $status $body" >&2; exit 1; }
read -r status _ < <(python3 "$KW" http "$PORT" GET /api/admin/api-tokens "$cred")
[[ "$status" == 403 ]] || { echo "run.sh: a seeded backend credential should get 403, got $status" >&2; exit 1; }
BAD_CRED="*:development.v2_$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')_$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
read -r status _ < <(python3 "$KW" http "$PORT" GET /api/admin/api-tokens "$BAD_CRED")
[[ "$status" == 401 ]] || { echo "run.sh: an unknown credential should get 401, got $status" >&2; exit 1; }
if has verify; then
  read -r status _ < <(python3 "$KW" http "$PORT" GET /api/verify "$cred")
  [[ "$status" == 200 ]] || { echo "run.sh: GET /api/verify with a seeded credential should get 200, got $status" >&2; exit 1; }
fi
if has edge1 || has edge10 || has edge100; then
  tokens="$(head -n 100 "$TMP/credentials.txt" | python3 -c 'import json, sys; print(json.dumps({"tokens": sys.stdin.read().split()}))')"
  read -r status body < <(python3 "$KW" http "$PORT" POST /edge/validate "" "$tokens")
  valid="$(python3 -c 'import json, sys; print(len(json.loads(sys.argv[1])["tokens"]))' "$body" 2>/dev/null || echo "?")"
  [[ "$status" == 200 && "$valid" == 100 ]] || { echo "run.sh: /edge/validate should find 100 of 100 seeded credentials valid, got $status, $valid" >&2; exit 1; }
fi

# nginx on three ports: docs/examples/nginx.conf (auth_request to keywarden),
# the same proxy without auth_request, and the static upstream both forward to.
if has nginx || has nginx-auth; then
  mkdir -p "$TMP/nginx"
  NGINX_PORT="$(python3 "$KW" free-port)"; PLAIN_PORT="$(python3 "$KW" free-port)"; UPSTREAM_PORT="$(python3 "$KW" free-port)"
  python3 "$KW" nginx-config "$TMP/nginx" "$NGINX_PORT" "$PORT" "$UPSTREAM_PORT" "$PLAIN_PORT"
  # The example requires environment=production; the seeded tokens are development ones.
  read -r status body < <(python3 "$KW" http "$PORT" POST /api/admin/api-tokens "$ADMIN" \
    '{"tokenName":"bench-nginx","type":"backend","environment":"production"}')
  [[ "$status" == 201 ]] || { echo "run.sh: creating a production token failed: $status $body" >&2; exit 1; }
  PROD_CRED="$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["secret"])' "$body")"
  /usr/sbin/nginx -e "$TMP/nginx/error.log" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" 2>>"$TMP/nginx/error.log" &
  NGINX_PID=$!
  for port_status in "$PLAIN_PORT:" "$NGINX_PORT:$PROD_CRED"; do
    for _ in $(seq 1 100); do
      status="$(python3 "$KW" http "${port_status%%:*}" GET / "${port_status#*:}" 2>/dev/null | cut -d' ' -f1)" && [[ "$status" == 200 ]] && break
      sleep 0.1
    done
    [[ "$status" == 200 ]] || { echo "run.sh: nginx did not answer 200 on port ${port_status%%:*}; its log:" >&2; tail -n 20 "$TMP/nginx/error.log" >&2; exit 1; }
  done
  read -r status _ < <(python3 "$KW" http "$NGINX_PORT" GET / "$BAD_CRED")
  [[ "$status" == 401 ]] || { echo "run.sh: nginx + auth_request should answer 401 to an unknown credential, got $status" >&2; exit 1; }
fi

# ---- 4. load ------------------------------------------------------------------
# scenario NAME: sets TITLE, EXPECT (status), TIMEOUT, TARGET (port) and ARGS
# (KW_* assignments for the wrk script) for one load scenario.
scenario() {
  EXPECT=200 TIMEOUT=2s TARGET="$PORT" ARGS=()
  case "$1" in
    health) TITLE="GET /health"; ARGS=(KW_PATH=/health) ;;
    unauth) TITLE="GET /api/admin/api-tokens, bad credential (401)"; EXPECT=401
      ARGS=(KW_PATH=/api/admin/api-tokens "KW_AUTH=$BAD_CRED") ;;
    name) TITLE="GET /api/admin/api-tokens/:name"
      ARGS=(KW_PREFIX=/api/admin/api-tokens/ "KW_KEYS=$TMP/names.txt" "KW_AUTH=$ADMIN") ;;
    list) TITLE="GET /api/admin/api-tokens (list)"; TIMEOUT=30s
      ARGS=(KW_PATH=/api/admin/api-tokens "KW_AUTH=$ADMIN") ;;
    put) TITLE="PUT /api/admin/api-tokens/:token"
      ARGS=(KW_METHOD=PUT KW_PREFIX=/api/admin/api-tokens/ "KW_KEYS=$TMP/selectors.txt" "KW_AUTH=$ADMIN" "KW_BODY=$PUT_BODY") ;;
    verify) TITLE="GET /api/verify (valid, default scope)"
      ARGS=(KW_PATH=/api/verify "KW_CREDENTIALS=$TMP/credentials.txt") ;;
    edge1|edge10|edge100) TITLE="POST /edge/validate, ${1#edge} valid token(s)"
      ARGS=(KW_METHOD=POST KW_PATH=/edge/validate "KW_CREDENTIALS=$TMP/credentials.txt" "KW_BATCH=${1#edge}") ;;
    nginx) TITLE="nginx alone, GET / (static upstream)"; TARGET="$PLAIN_PORT"
      ARGS=(KW_PATH=/ "KW_AUTH=$PROD_CRED") ;;
    nginx-auth) TITLE="nginx + auth_request to /api/verify, GET /"; TARGET="$NGINX_PORT"
      ARGS=(KW_PATH=/ "KW_AUTH=$PROD_CRED") ;;
    pgbench) TITLE="pgbench, PUT's transaction, no notify" ;;
    pgbench-notify) TITLE="pgbench, PUT's transaction + pg_notify" ;;
    pgbench-batch8) TITLE="pgbench, 8 PUT shapes per transaction (per PUT)" ;;
  esac
}

# One measured run of the current scenario: wrk, or pgbench for those.
load_once() { # NAME DURATION_S
  case "$1" in
    pgbench) pgbench_once plain "$2" ;;
    pgbench-notify) pgbench_once notify "$2" ;;
    pgbench-batch8) pgbench_once batch8 "$2" ;;
    *) wrk_once "$2" ;;
  esac
}

# pgbench for DURATION_S seconds with the script of variant $1; prints a JSON
# line shaped like wrk's (requests, duration_us, latency) so results and
# summaries treat it alike; a batch8 transaction counts as 8 requests.
# Latency percentiles are not collected (p50 is pgbench's mean, p99 0).
# Deadlocks between batches (random rows in random order) are retried.
pgbench_once() { # VARIANT DURATION_S
  local out tps count lat per=1
  [[ "$1" == batch8 ]] && per=8
  out="$(pgbench -n -M prepared --max-tries=10 -c "$PG_CLIENTS" -j 2 -T "$2" -D "max_id=$MAX_ID" -f "$TMP/pgbench-$1.sql" "$DATABASE_URL" 2>&1)" || { echo "$out" >&2; return 1; }
  tps="$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' <<<"$out")"
  count="$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")"
  lat="$(sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' <<<"$out")"
  [[ -n "$tps" && -n "$count" ]] || { echo "$out" >&2; return 1; }
  python3 -c 'import json, sys
tps, count, lat, per = float(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3] or 0), int(sys.argv[5])
print(json.dumps({"requests": count * per, "duration_us": int(count / tps * 1e6), "p50_us": int(lat * 1000),
                  "p99_us": 0, "status_errors": 0, "connect_errors": 0, "read_errors": 0,
                  "write_errors": 0, "timeouts": 0, "tool": "pgbench", "clients": int(sys.argv[4])}))' \
    "$tps" "$count" "$lat" "$PG_CLIENTS" "$per"
}

wrk_once() { # DURATION_S; prints wrk's JSON line
  env "${ARGS[@]}" wrk -t "$THREADS" -c "$CONNECTIONS" -d "${1}s" --timeout "$TIMEOUT" -s "$LUA" \
    "http://127.0.0.1:$TARGET" | grep '^{"requests"' || true
}

rss_kb() { python3 "$KW" rss "$SERVER_PID" | python3 -c 'import json, sys; print(json.load(sys.stdin)["rss_kb"])'; }

LOADS=()
for name in health unauth name list put pgbench pgbench-notify pgbench-batch8 verify edge1 edge10 edge100 nginx nginx-auth; do
  has "$name" || continue
  if [[ "$name" == list ]] && ((SIZE > 20000)); then
    log "list under load skipped at $SIZE tokens (each answer is the whole table); see list-latency"
    continue
  fi
  LOADS+=("$name")
done

# Round-robin: every scenario once per round, a warm-up before its first run.
LABEL_FIELD=""
[[ -n "$LABEL" ]] && LABEL_FIELD="\"label\":\"$LABEL\","
for run in $(seq 1 "$RUNS"); do
  for name in "${LOADS[@]}"; do
    scenario "$name"
    if ((run == 1)); then
      quiet_load >/dev/null
      log "$TITLE: warm-up ${WARMUP}s"
      load_once "$name" "$WARMUP" >/dev/null
      record "{\"kind\":\"rss\",${LABEL_FIELD}\"backend\":\"$BACKEND\",\"size\":$SIZE,\"scenario\":\"$TITLE\",\"when\":\"after warm-up\",\"rss_kb\":$(rss_kb)}"
    fi
    load="$(quiet_load)"
    line="$(load_once "$name" "$DURATION")"
    [[ -n "$line" ]] || { echo "run.sh: wrk printed no result for $TITLE" >&2; exit 1; }
    record "{\"kind\":\"wrk\",${LABEL_FIELD}\"backend\":\"$BACKEND\",\"size\":$SIZE,\"scenario\":\"$TITLE\",\"run\":$run,\"expect_status\":$EXPECT,\"load1\":$load,\"connections\":$CONNECTIONS,\"threads\":$THREADS,\"rss_kb\":$(rss_kb),${line#\{}"
    log "$TITLE run $run: $(python3 "$KW" wrk-line "$line") (load1 before: $load)"
  done
done

record "{\"kind\":\"rss\",\"backend\":\"$BACKEND\",\"size\":$SIZE,$(python3 "$KW" rss "$SERVER_PID" | sed 's/^{//')"

if has list-latency; then
  count=30
  ((SIZE > 20000)) && count=3
  load="$(quiet_load)"
  log "list latency: $count sequential requests"
  line="$(python3 "$KW" latency "$PORT" /api/admin/api-tokens "$ADMIN" "$count" 600)"
  record "{\"kind\":\"list-latency\",\"backend\":\"$BACKEND\",\"size\":$SIZE,\"load1\":$load,${line#\{}"
fi
stop_server

# ---- 5. start-up on the existing database ------------------------------------
if has startup; then
  runs="$STARTUP_RUNS"
  ((SIZE > 200000)) && runs=5
  load="$(quiet_load)"
  log "start-up: $runs runs"
  line="$(cd "$TMP" && KW_SETTLE_S=6 python3 "$KW" startup "$runs" "$PORT" 600 "$BIN")"
  record "{\"kind\":\"startup\",\"backend\":\"$BACKEND\",\"size\":$SIZE,\"load1\":$load,${line#\{}"
fi

# ---- summary ------------------------------------------------------------------
{
  echo "# keywarden benchmark: $BACKEND, $SIZE tokens"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ); work tree at commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD -- crates src Cargo.toml Cargo.lock 2>/dev/null || echo ' (+ uncommitted changes)')"
  echo "- binary: $BIN_NOTE; sha256 $(sha256sum "$BIN" | cut -c1-16)"
  echo "- machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -h | awk '/^Mem:/ {print $2}') RAM"
  echo "- wrk: $THREADS threads, $CONNECTIONS connections, ${WARMUP}s warm-up, $RUNS × ${DURATION}s runs"
  echo "- command: bench/run.sh --size $SIZE${PG_BASE:+ --postgres <url>} --duration $DURATION --runs $RUNS --scenarios $SCENARIOS${SEED_ARGS[*]:+ ${SEED_ARGS[*]}}"
  echo
  python3 "$KW" summarize "$RESULTS"
} >"$OUT/summary.md"
cat "$OUT/summary.md"
log "results in $OUT"
