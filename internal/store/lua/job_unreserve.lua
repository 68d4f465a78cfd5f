-- Unreserve: a placed attempt that its worker did not start goes back to
-- the pending set, its attempt number kept.
--
-- KEYS[1] -> {jobgate}:job:<id>
-- KEYS[2] -> {jobgate}:pending
-- KEYS[3] -> {jobgate}:worker:<worker>:jobs
-- KEYS[4] -> {jobgate}:worker:<worker>:gpus
-- KEYS[5] -> {jobgate}:ws:<ws>:running
-- --
-- ARGV[1] -> ws, the job's workspace the keys were made for
-- ARGV[2] -> worker, the one it must be placed on
-- ARGV[3] -> attempt
-- ARGV[4] -> job id
-- ARGV[5] -> reason
-- ARGV[6] -> reason code
-- ARGV[7] -> pending score
--
-- Returns {'ok'}; {'stale'} when it is not that queued attempt placed on
-- that worker; {'rekey', ws, worker}.
if redis.call('HGET', KEYS[1], 'status') ~= 'queued' then return {'stale'} end
if redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[3] then return {'stale'} end
if redis.call('HGET', KEYS[1], 'placed_on') ~= ARGV[2] then return {'stale'} end
if redis.call('HGET', KEYS[1], 'workspace') ~= ARGV[1] then return rekey(KEYS[1], ARGV[2]) end
release(KEYS[1], ARGV[4], KEYS[5], KEYS[4])
redis.call('HDEL', KEYS[1], 'placed_on', 'gpus')
redis.call('HSET', KEYS[1], 'reason', ARGV[5], 'reason_code', ARGV[6])
redis.call('SREM', KEYS[3], ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[7], ARGV[4])
return {'ok'}
