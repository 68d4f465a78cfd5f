-- Requeue: an attempt ends without ending the job, which goes back to the
-- pending set as the next attempt.
--
-- KEYS[1] -> {jobgate}:job:<id>
-- KEYS[2] -> {jobgate}:pending
-- KEYS[3] -> {jobgate}:job:<id>:attempts
-- KEYS[4] -> {jobgate}:ws:<ws>:jobs:status:queued
-- KEYS[5] -> {jobgate}:ws:<ws>:jobs:status:running
-- KEYS[6] -> {jobgate}:ws:<ws>:running
-- KEYS[7] -> {jobgate}:worker:<worker>:jobs
-- KEYS[8] -> {jobgate}:worker:<worker>:gpus
-- --
-- ARGV[1] -> ws, the job's workspace the keys were made for
-- ARGV[2] -> worker, the one it is placed on as far as the caller knows ('' = none)
-- ARGV[3] -> attempt
-- ARGV[4] -> reason
-- ARGV[5] -> reason code
-- ARGV[6] -> attempt history record ('' = none)
-- ARGV[7] -> pending score if its priority is high
-- ARGV[8] -> pending score if it is normal (or unknown)
-- ARGV[9] -> pending score if it is low
--
-- Returns {'ok'}; {'missing'}; {status} when it ended; {'stale'} when it is
-- another attempt; {'rekey', ws, worker}.
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return {'missing'} end
if terminal(st) then return {st} end
if redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[3] then return {'stale'} end
if not placedas(KEYS[1], ARGV[1], ARGV[2]) then return rekey(KEYS[1]) end
local id = redis.call('HGET', KEYS[1], 'id')
if ARGV[2] ~= '' then redis.call('SREM', KEYS[7], id) end
release(KEYS[1], id, KEYS[6], KEYS[8])
local from = KEYS[5]
if st == 'queued' then from = KEYS[4] end
setstatus(KEYS[1], id, from, KEYS[4], 'queued')
redis.call('HINCRBY', KEYS[1], 'attempt', 1)
redis.call('HSET', KEYS[1], 'reason', ARGV[4], 'reason_code', ARGV[5])
redis.call('HDEL', KEYS[1], 'placed_on', 'worker', 'instance', 'started_at', 'gpus', 'cancel_requested')
local prio = redis.call('HGET', KEYS[1], 'priority')
local score = ARGV[8]
if prio == 'high' then score = ARGV[7] elseif prio == 'low' then score = ARGV[9] end
redis.call('ZADD', KEYS[2], score, id)
if ARGV[6] ~= '' then redis.call('RPUSH', KEYS[3], ARGV[6]) end
return {'ok'}
