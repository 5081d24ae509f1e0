-- wrk script for the second step of an API sign-in, POST /api/v1/login/verify: reads "token<TAB>body" lines from
-- $TWOFOLD_REQUESTS (one pending sign-in each, each used once; run wrk with -t1) and counts the outcomes.
local report = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "wrk_report.lua")
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
  report.print(threads, latency, { { "accepts", "authenticated" }, { "rejects", "refused" }, { "others", "other" } })
end

