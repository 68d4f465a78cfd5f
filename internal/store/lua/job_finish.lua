-- Finish: an attempt ends, and with it the job (a terminal status).
--
-- KEYS[1]  -> {jobgate}:job:<id>
-- KEYS[2]  -> {jobgate}:pending
-- KEYS[3]  -> {jobgate}:job:<id>:log
-- KEYS[4]  -> {jobgate}:job:<id>:attempts
-- KEYS[5]  -> {jobgate}:events:ended
-- KEYS[6]  -> {jobgate}:ws:<ws>:jobs:status:queued
-- KEYS[7]  -> {jobgate}:ws:<ws>:jobs:status:running
-- KEYS[8]  -> {jobgate}:ws:<ws>:jobs:status:<ARGV[4]>
-- KEYS[9]  -> {jobgate}:ws:<ws>:running
-- KEYS[10] -> {jobgate}:worker:<worker>:jobs
-- KEYS[11] -> {jobgate}:worker:<worker>:gpus
-- --
-- ARGV[1]  -> ws, the job's workspace the keys were made for
-- ARGV[2]  -> worker, the one it is placed on as far as the caller knows ('' = none)
-- ARGV[3]  -> attempt ('' = any)
-- ARGV[4]  -> status (terminal)
-- ARGV[5]  -> reason
-- ARGV[6]  -> reason code
-- ARGV[7]  -> exit code ('' = none)
-- ARGV[8]  -> now (RFC 3339)
-- ARGV[9]  -> log stream cap
-- ARGV[10] -> log stream TTL, seconds
-- ARGV[11] -> only if the status is this ('' = any that is not terminal)
-- ARGV[12] -> attempt history record ('' = none)
-- ARGV[13] -> log channel (published to)
--
-- Returns {'ok'}; {'missing'}; {status} when it ended or is not ARGV[11];
-- {'stale'} when it is another attempt; {'rekey', ws, worker}.
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return {'missing'} end
if terminal(st) then return {st} end
if ARGV[3] ~= '' and redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[3] then return {'stale'} end
if ARGV[11] ~= '' and st ~= ARGV[11] then return {st} end
if not placedas(KEYS[1], ARGV[1], ARGV[2]) then return rekey(KEYS[1]) end
local id = redis.call('HGET', KEYS[1], 'id')
if ARGV[2] ~= '' then redis.call('SREM', KEYS[10], id) end
release(KEYS[1], id, KEYS[9], KEYS[11])
redis.call('ZREM', KEYS[2], id)
local from = KEYS[7]
if st == 'queued' then from = KEYS[6] end
setstatus(KEYS[1], id, from, KEYS[8], ARGV[4])
redis.call('HSET', KEYS[1], 'reason', ARGV[5], 'reason_code', ARGV[6], 'finished_at', ARGV[8])
if ARGV[7] ~= '' then redis.call('HSET', KEYS[1], 'exit_code', ARGV[7]) end
redis.call('HDEL', KEYS[1], 'cancel_requested', 'placed_on')
if ARGV[12] ~= '' then redis.call('RPUSH', KEYS[4], ARGV[12]) end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[9], '*', 'end', ARGV[4])
redis.call('EXPIRE', KEYS[3], ARGV[10])
redis.call('PUBLISH', ARGV[13], '')
if redis.call('HGET', KEYS[1], 'notify') == 'true' then
  redis.call('XADD', KEYS[5], '*', 'job', id, 'status', ARGV[4])
end
return {'ok'}
