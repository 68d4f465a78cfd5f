-- ClaimScheduleTick: one tick of a schedule is taken, at most once.
--
-- KEYS[1] -> {jobgate}:ws:<ws>:schedule:<name>
-- KEYS[2] -> {jobgate}:ws:<ws>:schedule:<name>:tick:<id>:<tick ms>
-- --
-- ARGV[1] -> schedule id
-- ARGV[2] -> tick, unix ms
-- ARGV[3] -> claim TTL, ms
-- ARGV[4] -> holder
--
-- Returns 1 when this call took it, else 0.
local h = redis.call('HMGET', KEYS[1], 'id', 'paused', 'last_tick', 'since')
if h[1] ~= ARGV[1] or h[2] == '1' then return 0 end
local t = tonumber(ARGV[2])
if h[3] and tonumber(h[3]) >= t then return 0 end
if h[4] and tonumber(h[4]) >= t then return 0 end
if not redis.call('SET', KEYS[2], ARGV[4], 'NX', 'PX', ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], 'last_tick', ARGV[2])
return 1
