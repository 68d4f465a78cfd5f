-- CreateSchedule: a new schedule, unless its name is taken or the
-- workspace has as many as it may.
--
-- KEYS[1] -> {jobgate}:ws:<ws>:schedule:<name>
-- KEYS[2] -> {jobgate}:ws:<ws>:schedules
-- KEYS[3] -> {jobgate}:schedules
-- --
-- ARGV[1] -> name
-- ARGV[2] -> ws/name
-- ARGV[3] -> definition (JSON)
-- ARGV[4] -> schedule id
-- ARGV[5] -> since, unix ms
-- ARGV[6] -> max schedules of the workspace (<= 0: no limit)
--
-- Returns 1; 0 when the name is taken; -1 at the limit.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local max = tonumber(ARGV[6])
if max > 0 and redis.call('SCARD', KEYS[2]) >= max then return -1 end
redis.call('HSET', KEYS[1], 'def', ARGV[3], 'id', ARGV[4], 'paused', '0', 'since', ARGV[5])
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[2])
return 1
