-- CompleteDelivery, ReleaseDelivery: a delivery's claim is replaced by the
-- job it made, or deleted, only if the caller still holds it.
--
-- KEYS[1] -> the claim (see claimKey)
-- --
-- ARGV[1] -> the caller's claim value
-- ARGV[2] -> the job id ('' = delete the claim)
-- ARGV[3] -> TTL, ms
--
-- Returns 1 when the caller held it, else 0.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then return redis.call('DEL', KEYS[1]) end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
