-- SetModelTag: set one MLflow tag of a registered model or of one of its
-- versions, only while that model or version exists (so that a tag set
-- as it is deleted is not left behind, to show on a model made again
-- under the name), and unless the tags would pass their bound.
--
-- KEYS[1] -> the tags hash: {jobgate}:ws:<ws>:model:<name>:tags[:<version>]
-- KEYS[2] -> the hash that holds what is tagged: {jobgate}:ws:<ws>:models
--            (field: the model's name) or {jobgate}:ws:<ws>:model:<name>:versions
--            (field: the version)
-- --
-- ARGV[1] -> tag key
-- ARGV[2] -> tag value
-- ARGV[3] -> the most tags the hash may hold
-- ARGV[4] -> the field of KEYS[2] that must exist
--
-- Returns 1 when set, 0 when the tags are full, -1 when what is tagged is gone.
if redis.call('HEXISTS', KEYS[2], ARGV[4]) == 0 then return -1 end
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 or redis.call('HLEN', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  return 1
end
return 0
