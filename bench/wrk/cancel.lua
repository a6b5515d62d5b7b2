-- wrk script: PUT /v1/jobs/{id}/cancel for customer 1, each job listed in JOBS_FILE (one id
-- a line) once, shared out between the threads; the token is in JOBS_TOKEN. Used by
-- bench/limits and bench/data.
local threads = {}
setup = function(thread)
  thread:set("index", #threads)
  table.insert(threads, thread)
end
local ids, next_id = {}, 1
init = function()
  local index, count = tonumber(wrk.thread:get("index")), 2
  local n = 0
  for line in io.lines(os.getenv("JOBS_FILE")) do
    if n % count == index then table.insert(ids, line) end
    n = n + 1
  end
end
request = function()
  local id = ids[next_id]
  next_id = next_id + 1
  return wrk.format("PUT", "/v1/jobs/" .. id .. "/cancel", {["Content-Type"] = "application/json",
    ["Customer-Id"] = "1", ["Authorization"] = "Bearer " .. os.getenv("JOBS_TOKEN")},
    '{"reason": "moved to next year"}')
end
