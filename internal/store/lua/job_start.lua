-- Start: a placed, queued attempt runs on its worker. It also does what
-- Placed does (out of the pending set, into the worker's and the
-- workspace's running sets): the worker can take the task off its queue
-- before the scheduler's Placed runs, and Placed then finds the attempt no
-- longer queued. Without this a running job would be on no worker's list,
-- and a worker lost under it would leave it running for ever.
--
-- KEYS[1] -> {jobgate}:job:<id>
-- KEYS[2] -> {jobgate}:ws:<ws>:jobs:status:queued
-- KEYS[3] -> {jobgate}:ws:<ws>:jobs:status:running
-- KEYS[4] -> {jobgate}:pending
-- KEYS[5] -> {jobgate}:worker:<worker>:jobs
-- KEYS[6] -> {jobgate}:ws:<ws>:running
-- --
-- ARGV[1] -> ws, the job's workspace the keys were made for
-- ARGV[2] -> the worker starting it, which it must be placed on
-- ARGV[3] -> attempt
-- ARGV[4] -> now (RFC 3339)
-- ARGV[5] -> placement
-- ARGV[6] -> instance (the worker process)
--
-- Returns {'ok', cancel_requested, preempt_requested} (each '' when not
-- asked for); {'missing'}; {status} when it is not queued; {'stale'} when it
-- is another attempt, placement or worker's; {'rekey', ws, worker}.
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return {'missing'} end
if st ~= 'queued' then return {st} end
if redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[3] then return {'stale'} end
if redis.call('HGET', KEYS[1], 'placed_on') ~= ARGV[2] then return {'stale'} end
if redis.call('HGET', KEYS[1], 'placement') ~= ARGV[5] then return {'stale'} end
if redis.call('HGET', KEYS[1], 'workspace') ~= ARGV[1] then return rekey(KEYS[1], ARGV[2]) end
local id = redis.call('HGET', KEYS[1], 'id')
setstatus(KEYS[1], id, KEYS[2], KEYS[3], 'running')
redis.call('ZREM', KEYS[4], id)
redis.call('SADD', KEYS[5], id)
redis.call('SADD', KEYS[6], id)
redis.call('HSET', KEYS[1], 'started_at', ARGV[4], 'worker', ARGV[2], 'reason', '', 'reason_code', '', 'instance', ARGV[6])
redis.call('HDEL', KEYS[1], 'exit_code', 'finished_at')
local h = redis.call('HMGET', KEYS[1], 'cancel_requested', 'preempt_requested')
return {'ok', h[1] or '', h[2] or ''}
