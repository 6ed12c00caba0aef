-- wrk script for keywarden's benchmarks, configured through the environment:
--   KW_METHOD       HTTP method (default GET)
--   KW_PATH         fixed path (when KW_KEYS is unset), e.g. /health
--   KW_PREFIX       path prefix the keys are appended to, e.g. /api/admin/api-tokens/
--   KW_KEYS         file with one path suffix per line (selectors or names); the
--                   requests rotate over them, each thread starting elsewhere
--   KW_AUTH         Authorization header value (optional)
--   KW_BODY         request body (optional; sent as application/json)
--   KW_CREDENTIALS  file with one credential per line; the requests rotate over
--                   them, sent as the Authorization header, or, with KW_BATCH,
--                   KW_BATCH of them per request as the body {"tokens": [...]}
--                   (what POST /edge/validate reads)
-- done() prints one JSON line with the figures run.sh collects.

local method = os.getenv("KW_METHOD") or "GET"
local path = os.getenv("KW_PATH") or "/"
local auth = os.getenv("KW_AUTH")
local body = os.getenv("KW_BODY")
local keys = os.getenv("KW_KEYS")
local prefix = os.getenv("KW_PREFIX") or "/"
local credentials = os.getenv("KW_CREDENTIALS")
local batch = tonumber(os.getenv("KW_BATCH") or "")

local headers = {}
if auth and auth ~= "" then headers["Authorization"] = auth end
if body and body ~= "" then headers["Content-Type"] = "application/json" else body = nil end

wrk.method = method
wrk.path = path
wrk.headers = headers
wrk.body = body

local threads = 0
function setup(thread)
  thread:set("thread_index", threads)
  threads = threads + 1
end

local function lines(file)
  local found = {}
  for line in io.lines(file) do
    if line ~= "" then found[#found + 1] = line end
  end
  assert(#found > 0, "nothing in " .. file)
  return found
end

-- The requests a thread rotates over, built once in init(): one per key, one
-- per credential, or one per KW_BATCH credentials (covering the list once).
local function prepare()
  local prepared = {}
  if keys and keys ~= "" then
    for _, key in ipairs(lines(keys)) do
      prepared[#prepared + 1] = wrk.format(method, prefix .. key, headers, body)
    end
  elseif batch then
    local all = lines(credentials)
    local json_headers = { ["Content-Type"] = "application/json" }
    if auth and auth ~= "" then json_headers["Authorization"] = auth end
    for first = 1, #all, batch do
      local chosen = {}
      for i = 0, batch - 1 do chosen[#chosen + 1] = '"' .. all[(first + i - 1) % #all + 1] .. '"' end
      prepared[#prepared + 1] =
        wrk.format(method, path, json_headers, '{"tokens":[' .. table.concat(chosen, ",") .. ']}')
    end
  else
    for _, credential in ipairs(lines(credentials)) do
      local with_auth = { Authorization = credential }
      for name, value in pairs(headers) do
        if name ~= "Authorization" then with_auth[name] = value end
      end
      prepared[#prepared + 1] = wrk.format(method, path, with_auth, body)
    end
  end
  return prepared
end

-- Without keys or credentials wrk sends its one static request (no Lua per request).
if (keys and keys ~= "") or (credentials and credentials ~= "") then
  local prepared
  local next_index = 0

  function init(args)
    prepared = prepare()
    -- Spread the threads over the list.
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
