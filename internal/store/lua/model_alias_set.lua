-- SetModelAlias: point an alias of a model at one of its versions, which
-- must exist (a version deleted meanwhile is not aliased).
--
-- KEYS[1] -> {jobgate}:ws:<ws>:model:<name>:versions
-- KEYS[2] -> {jobgate}:ws:<ws>:model:<name>:aliases
-- --
-- ARGV[1] -> alias
-- ARGV[2] -> version
--
-- Returns 1, or 0 when there is no such version.
if redis.call('HEXISTS', KEYS[1], ARGV[2]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
