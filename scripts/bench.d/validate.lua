-- wrk script for Twofold's POST /api/v1/validate: sends the JSON bodies in $TWOFOLD_BODIES in order (one per line,
-- each used once; run wrk with -t1) with the API key in $TWOFOLD_API_KEY, and counts the outcomes.
local report = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "wrk_report.lua")
wrk.method = "POST"
wrk.path = "/api/v1/validate"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TWOFOLD_API_KEY")

local bodies, index = {}, 0
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args)
  accepts = 0; rejects = 0; others = 0
  local file = assert(io.open(os.getenv("TWOFOLD_BODIES"), "r"))
  for line in file:lines() do if #line > 0 then bodies[#bodies + 1] = line end end
  file:close()
end
function request()
  index = index + 1
  return wrk.format(nil, nil, nil, bodies[((index - 1) % #bodies) + 1])
end
function response(status, headers, body)
  if status == 200 and string.find(body, '"accept"', 1, true) then accepts = accepts + 1
  elseif status == 200 and string.find(body, '"reject"', 1, true) then rejects = rejects + 1
  else others = others + 1 end
end
function done(summary, latency, requests)
  report.print(threads, latency, { { "accepts", "accept" }, { "rejects", "reject" }, { "others", "other" } })
end

