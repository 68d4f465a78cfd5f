-- RenewBatchScoreClaim: extend the lease of a claim its owner still holds.
--
-- KEYS[1] -> {jobgate}:bscore:<parent>:claims
-- --
-- ARGV[1] -> file index
-- ARGV[2] -> owner
-- ARGV[3] -> lease, ms
--
-- Returns 1 when renewed, 0 when the claim is gone or another's.
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return 0 end
local _, owner = string.match(cur, '^(%d+) (.*)$')
if owner ~= ARGV[2] then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], ARGV[1], tostring(now + tonumber(ARGV[3])) .. ' ' .. ARGV[2])
return 1
