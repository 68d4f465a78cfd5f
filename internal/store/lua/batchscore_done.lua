-- MarkBatchScoreDone: mark a file of a batch-score job's plan done (once)
-- and drop the owner's claim on it.
--
-- KEYS[1] -> {jobgate}:bscore:<parent>:claims
-- KEYS[2] -> {jobgate}:bscore:<parent>:done
-- --
-- ARGV[1] -> file index
-- ARGV[2] -> owner
-- ARGV[3] -> the done mark, JSON
-- ARGV[4] -> TTL of the keys, ms
--
-- Returns 1 when this call marked it, 0 when it was done already.
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local _, owner = string.match(cur, '^(%d+) (.*)$')
  if owner == ARGV[2] then redis.call('HDEL', KEYS[1], ARGV[1]) end
end
local n = redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return n
