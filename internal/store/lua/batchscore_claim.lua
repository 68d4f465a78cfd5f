-- ClaimBatchScoreFile: claim the first file of a batch-score job's plan
-- that is not done and that no one else holds a live claim on.
--
-- KEYS[1] -> {jobgate}:bscore:<parent>:claims (file index -> "<expiry ms> <owner>")
-- KEYS[2] -> {jobgate}:bscore:<parent>:done (file index -> done mark, JSON)
-- KEYS[3] -> {jobgate}:bscore:<parent>:plan
-- --
-- ARGV[1] -> how many files the plan holds
-- ARGV[2] -> owner, "<job id>:<attempt>"
-- ARGV[3] -> lease, ms
-- ARGV[4] -> TTL of the keys, ms
--
-- A claim is free when there is none, when its lease lapsed, when it is the
-- owner's own, or when it is held by an earlier attempt of the owner's job
-- (a new attempt means the old one is dead). Time is the server's.
--
-- Returns {index, left}: the file claimed (-1 when none is free now) and
-- how many files are not done.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = tonumber(ARGV[1])
local me = ARGV[2]
local job, attempt = string.match(me, '^(.*):(%d+)$')
attempt = tonumber(attempt)
local left = n - redis.call('HLEN', KEYS[2])
local got = -1
for i = 0, n - 1 do
  local f = tostring(i)
  if redis.call('HEXISTS', KEYS[2], f) == 0 then
    local cur = redis.call('HGET', KEYS[1], f)
    local take = not cur
    if cur then
      local exp, owner = string.match(cur, '^(%d+) (.*)$')
      if not exp or tonumber(exp) <= now or owner == me then
        take = true
      elseif job then
        local oj, oa = string.match(owner, '^(.*):(%d+)$')
        take = oj == job and tonumber(oa) < attempt
      end
    end
    if take then
      redis.call('HSET', KEYS[1], f, tostring(now + tonumber(ARGV[3])) .. ' ' .. me)
      got = i
      break
    end
  end
end
for k = 1, 3 do
  redis.call('PEXPIRE', KEYS[k], ARGV[4])
end
return {got, left}
