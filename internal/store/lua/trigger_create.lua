-- CreateTrigger: a trigger and its name in one step, unless the name is
-- taken.
--
-- KEYS[1] -> {jobgate}:ws:<ws>:triggers
-- KEYS[2] -> {jobgate}:trigger:<id>
-- --
-- ARGV[1] -> name
-- ARGV[2] -> trigger id
-- ARGV[3] -> the trigger (JSON)
--
-- Returns 1, or 0 when the name is taken.
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('SET', KEYS[2], ARGV[3])
return 1
