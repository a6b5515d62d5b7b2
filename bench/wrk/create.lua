-- wrk script: POST /v1/jobs with the minimal body, for customer 1, with the token in
-- JOBS_TOKEN. Shared by bench/load, bench/limits and bench/data.
wrk.method = "POST"
wrk.body = '{"typeId": 1, "contactId": 2, "reference": "bench"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Customer-Id"] = "1"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("JOBS_TOKEN")
