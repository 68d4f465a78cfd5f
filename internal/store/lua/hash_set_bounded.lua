-- Sets one field of a hash unless that would make it hold more than a
-- bound of fields (an experiment's tags).
-- KEYS[1] the hash
-- ARGV[1] field, ARGV[2] value, ARGV[3] the most fields the hash may hold
-- Returns 1 when set, 0 when the hash is full.
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 or redis.call('HLEN', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  return 1
end
return 0
