-- wrk: the same request drover sends for one benchmark task.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"max_tokens":16,"messages":[{"role":"user","content":"Classify support ticket 1: my order arrived late and the box was damaged."}],"model":"drover-sim-instant"}'
