-- DeleteModelVersion: remove a version of a model and every alias that
-- names it, in one step (an alias never names a version that is gone).
-- The version's number is not given out again: the counter stays.
--
-- KEYS[1] -> {jobgate}:ws:<ws>:model:<name>:versions
-- KEYS[2] -> {jobgate}:ws:<ws>:model:<name>:aliases
-- --
-- ARGV[1] -> version
--
-- Returns {0} when there is no such version, else {1, alias...} with the
-- aliases removed.
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return {0} end
local removed = {1}
local all = redis.call('HGETALL', KEYS[2])
for i = 1, #all, 2 do
  if all[i + 1] == ARGV[1] then
    redis.call('HDEL', KEYS[2], all[i])
    table.insert(removed, all[i])
  end
end
return removed
