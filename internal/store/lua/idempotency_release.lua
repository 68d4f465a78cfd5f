-- ReleaseIdempotency: an Idempotency-Key whose request failed is freed,
-- unless it names a job.
--
-- KEYS[1] -> {jobgate}:ws:<ws>:idem:<hash>
local v = redis.call('GET', KEYS[1])
if v and not string.find(v, '"job_id"', 1, true) then redis.call('DEL', KEYS[1]) end
return 0
