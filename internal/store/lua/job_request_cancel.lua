-- RequestCancel: a running job is marked for its worker to stop it, with
-- the reason its end is to carry when the canceler gave one.
--
-- KEYS[1] -> {jobgate}:job:<id>
-- ARGV[1] -> the reason's code, or '' for a plain cancel
-- ARGV[2] -> the reason's detail
--
-- Returns 1 when it is running (and now marked), else 0.
if redis.call('HGET', KEYS[1], 'status') == 'running' then
  redis.call('HSET', KEYS[1], 'cancel_requested', '1')
  if ARGV[1] ~= '' then
    redis.call('HSET', KEYS[1], 'cancel_reason_code', ARGV[1], 'cancel_reason_detail', ARGV[2])
  end
  return 1
end
return 0
