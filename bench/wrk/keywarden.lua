-- wrk script for keywarden's benchmarks, configured through the environment:
--   KW_METHOD  HTTP method (default GET)
--   KW_PATH    fixed path (when KW_KEYS is unset), e.g. /health
--   KW_PREFIX  path prefix the keys are appended to, e.g. /api/admin/api-tokens/
--   KW_KEYS    file with one path suffix per line (selectors or names); the
--              requests rotate over them, each thread starting elsewhere
--   KW_AUTH    Authorization header value (optional)
--   KW_BODY    request body (optional; sent as application/json)
-- done() prints one JSON line with the figures run.sh collects.

local method = os.getenv("KW_METHOD") or "GET"
local auth = os.getenv("KW_AUTH")
local body = os.getenv("KW_BODY")
local keys = os.getenv("KW_KEYS")
local prefix = os.getenv("KW_PREFIX") or "/"

local headers = {}
if auth and auth ~= "" then headers["Authorization"] = auth end
if body and body ~= "" then headers["Content-Type"] = "application/json" else body = nil end

wrk.method = method
wrk.path = os.getenv("KW_PATH") or "/"
wrk.headers = headers
wrk.body = body

local threads = 0
function setup(thread)
  thread:set("thread_index", threads)
  threads = threads + 1
end

if keys and keys ~= "" then
  local prepared = {}
  local next_index = 0

  function init(args)
    for line in io.lines(keys) do
      if line ~= "" then
        prepared[#prepared + 1] = wrk.format(method, prefix .. line, headers, body)
      end
    end
    assert(#prepared > 0, "no keys in " .. keys)
    -- Spread the threads over the key list.
    next_index = ((thread_index or 0) * 7919) % #prepared
  end

  function request()
    next_index = next_index % #prepared + 1
    return prepared[next_index]
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"bytes":%d,"status_errors":%d,"connect_errors":%d,' ..
    '"read_errors":%d,"write_errors":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,' ..
    '"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.status, e.connect,
    e.read, e.write, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.max, latency.mean))
end
