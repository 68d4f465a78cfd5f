-- DeleteSchedule: a schedule, its history and its firing lock.
--
-- KEYS[1] -> {jobgate}:ws:<ws>:schedule:<name>
-- KEYS[2] -> {jobgate}:ws:<ws>:schedule:<name>:history
-- KEYS[3] -> {jobgate}:ws:<ws>:schedule:<name>:lock
-- KEYS[4] -> {jobgate}:ws:<ws>:schedules
-- KEYS[5] -> {jobgate}:schedules
-- --
-- ARGV[1] -> name
-- ARGV[2] -> ws/name
--
-- Returns 1, or 0 when there is no such schedule.
if redis.call('DEL', KEYS[1]) == 0 then return 0 end
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('SREM', KEYS[4], ARGV[1])
redis.call('SREM', KEYS[5], ARGV[2])
return 1
