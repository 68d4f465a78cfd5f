-- RecordScheduleRun: a run joins a schedule's history, newest first, and
-- its job becomes the schedule's latest.
--
-- KEYS[1] -> {jobgate}:ws:<ws>:schedule:<name>
-- KEYS[2] -> {jobgate}:ws:<ws>:schedule:<name>:history
-- --
-- ARGV[1] -> schedule id (a run of a schedule replaced meanwhile is dropped)
-- ARGV[2] -> the run (JSON)
-- ARGV[3] -> how many runs the history keeps
-- ARGV[4] -> the run's job id ('' = none)
-- ARGV[5] -> fired at, unix ms
--
-- Returns 1, or 0 when the schedule is gone or replaced.
if redis.call('HGET', KEYS[1], 'id') ~= ARGV[1] then return 0 end
redis.call('LPUSH', KEYS[2], ARGV[2])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[3]) - 1)
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'last_job', ARGV[4], 'last_fired_at', ARGV[5]) end
return 1
