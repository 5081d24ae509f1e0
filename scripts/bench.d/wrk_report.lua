-- Shared by the wrk scripts of scripts/bench: adds up the outcome counters of every thread and prints them with the
-- latency percentiles, as the "OUTCOMES name=count …" and "LAT p50_us=…" lines that scripts/bench reads.
local report = {}

-- counters: { {global counter name, printed name}, … } in the order they are printed
function report.print(threads, latency, counters)
  local parts = {}
  for _, counter in ipairs(counters) do
    local total = 0
    for _, t in ipairs(threads) do total = total + t:get(counter[1]) end
    parts[#parts + 1] = string.format("%s=%d", counter[2], total)
  end
  io.write("OUTCOMES " .. table.concat(parts, " ") .. "\n")
  io.write(string.format("LAT p50_us=%d p90_us=%d p99_us=%d max_us=%d\n",
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end

return report
