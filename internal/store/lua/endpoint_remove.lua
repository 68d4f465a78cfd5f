-- RemoveEndpoint: remove a replica job's endpoint while the given attempt
-- holds it (checked and removed at once: a newer attempt's stays).
--
-- KEYS[1] -> {jobgate}:endpoint:<job>
-- --
-- ARGV[1] -> attempt
--
-- Returns 1 when removed, else 0.
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
local ok, e = pcall(cjson.decode, cur)
if ok and type(e) == 'table' and tonumber(e.attempt) == tonumber(ARGV[1]) then
  return redis.call('DEL', KEYS[1])
end
return 0
