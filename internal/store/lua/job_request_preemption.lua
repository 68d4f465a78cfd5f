-- RequestPreemption: a running attempt is marked to be stopped and requeued.
--
-- KEYS[1] -> {jobgate}:job:<id>
-- --
-- ARGV[1] -> attempt
-- ARGV[2] -> the job it gives way to
--
-- Returns 1 when this call marked it, else 0.
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
if redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[1], 'preempt_requested') then return 0 end
redis.call('HSET', KEYS[1], 'preempt_requested', ARGV[2])
return 1
