-- PutEndpoint: write (or renew) a replica job's endpoint, unless a newer
-- attempt of the job wrote it (an older attempt, its worker called lost,
-- may run on for a while).
--
-- KEYS[1] -> {jobgate}:endpoint:<job>
-- --
-- ARGV[1] -> the endpoint record (JSON)
-- ARGV[2] -> its attempt
-- ARGV[3] -> TTL in ms
--
-- Returns 1 when written, 0 when a newer attempt holds the key.
local cur = redis.call('GET', KEYS[1])
if cur then
  local ok, e = pcall(cjson.decode, cur)
  if ok and type(e) == 'table' and tonumber(e.attempt) and tonumber(e.attempt) > tonumber(ARGV[2]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1
