-- SetReason: why a queued job waits, its state unchanged.
--
-- KEYS[1] -> {jobgate}:job:<id>
-- --
-- ARGV[1] -> reason
-- ARGV[2] -> reason code
if redis.call('HGET', KEYS[1], 'status') == 'queued' then
  redis.call('HSET', KEYS[1], 'reason', ARGV[1], 'reason_code', ARGV[2])
end
return 0
