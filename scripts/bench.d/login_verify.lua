-- wrk script for the second step of an API sign-in, POST /api/v1/login/verify: reads "token<TAB>body" lines from
-- $TWOFOLD_REQUESTS (one pending sign-in each, each used once; run wrk with -t1) and counts the outcomes.
wrk.method = "POST"
wrk.path = "/api/v1/login/verify"

local requests, index = {}, 0
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args)
  accepts = 0; rejects = 0; others = 0
  local file = assert(io.open(os.getenv("TWOFOLD_REQUESTS"), "r"))
  for line in file:lines() do
    local token, body = line:match("^([^\t]+)\t(.+)$")
    if token then requests[#requests + 1] = { token = token, body = body } end
  end
  file:close()
end
function request()
  index = index + 1
  local r = requests[((index - 1) % #requests) + 1]
  return wrk.format(nil, nil, { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. r.token }, r.body)
end
function response(status, headers, body)
  if status == 200 and string.find(body, '"authenticated"', 1, true) then accepts = accepts + 1
  elseif status >= 400 and status < 500 then rejects = rejects + 1
  else others = others + 1 end
end
function done(summary, latency, requests)
  local a, r, o = 0, 0, 0
  for _, t in ipairs(threads) do a = a + t:get("accepts"); r = r + t:get("rejects"); o = o + t:get("others") end
  io.write(string.format("OUTCOMES authenticated=%d refused=%d other=%d\n", a, r, o))
  io.write(string.format("LAT p50_us=%d p90_us=%d p99_us=%d max_us=%d\n",
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
