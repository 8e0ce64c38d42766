-- wrk script: one receipt per POST to /api/v1/platforms/sim/receipts, each for the next seeded
-- message (platform id sim-TASK-ID, ids FIRST .. FIRST+COUNT-1, wrapping round to duplicates).
--   SMSLAB_TOKEN=... SMSLAB_TASK=1 SMSLAB_FIRST=1 SMSLAB_COUNT=300000 SMSLAB_AT=1700000000 \
--   wrk -t1 -c64 -d10s -s loadtests/webhook.lua http://127.0.0.1:8080/api/v1/platforms/sim/receipts
-- With -tN each thread takes its own stride of ids.
local task = os.getenv("SMSLAB_TASK") or "1"
local first = tonumber(os.getenv("SMSLAB_FIRST") or "1")
local count = tonumber(os.getenv("SMSLAB_COUNT") or "100000")
local at = os.getenv("SMSLAB_AT") or "0"
local token = os.getenv("SMSLAB_TOKEN") or ""

local threads = {}
local next_thread = 0
function setup(thread)
  thread:set("tid", next_thread)
  next_thread = next_thread + 1
  table.insert(threads, thread)
end

local counter = 0
local stride = 1
function init(args)
  stride = next_thread > 0 and next_thread or 1
  counter = tid or 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. token
end

function request()
  local id = first + (counter % count)
  counter = counter + stride
  local body = '{"receipts":[{"platform_id":"sim-' .. task .. '-' .. id .. '","status":"delivered","at":' .. at .. '}]}'
  return wrk.format(nil, nil, nil, body)
end
