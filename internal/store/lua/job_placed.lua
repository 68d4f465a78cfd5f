-- Placed: a reserved attempt's task is on its worker's queue; it leaves the
-- pending set and holds a slot of the worker and of its workspace.
--
-- KEYS[1] -> {jobgate}:job:<id>
-- KEYS[2] -> {jobgate}:pending
-- KEYS[3] -> {jobgate}:worker:<worker>:jobs
-- KEYS[4] -> {jobgate}:ws:<ws>:running
-- --
-- ARGV[1] -> ws, the job's workspace the keys were made for
-- ARGV[2] -> worker, the one it must be placed on
-- ARGV[3] -> attempt
-- ARGV[4] -> job id
--
-- Returns {'ok'}; {'stale'} when it is not that queued attempt placed on
-- that worker; {'rekey', ws, worker}.
if redis.call('HGET', KEYS[1], 'status') ~= 'queued' then return {'stale'} end
if redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[3] then return {'stale'} end
if redis.call('HGET', KEYS[1], 'placed_on') ~= ARGV[2] then return {'stale'} end
if redis.call('HGET', KEYS[1], 'workspace') ~= ARGV[1] then return rekey(KEYS[1], ARGV[2]) end
redis.call('ZREM', KEYS[2], ARGV[4])
redis.call('SADD', KEYS[3], ARGV[4])
redis.call('SADD', KEYS[4], ARGV[4])
return {'ok'}
