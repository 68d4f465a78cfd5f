-- Heartbeat: a worker is alive, at Redis's time.
--
-- KEYS[1] -> {jobgate}:worker:<id>
-- KEYS[2] -> {jobgate}:workers
-- --
-- ARGV[1] -> worker id
-- ARGV[2] -> instance ('' = any)
--
-- Returns '', or the instance that holds the ID when it is another (and
-- then marks nothing).
local cur = redis.call('HGET', KEYS[1], 'instance')
if ARGV[2] ~= '' and cur and cur ~= '' and cur ~= ARGV[2] then return cur end
local t = redis.call('TIME')
redis.call('ZADD', KEYS[2], tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), ARGV[1])
return ''
