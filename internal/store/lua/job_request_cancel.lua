-- RequestCancel: a running job is marked for its worker to stop it.
--
-- KEYS[1] -> {jobgate}:job:<id>
--
-- Returns 1 when it is running (and now marked), else 0.
if redis.call('HGET', KEYS[1], 'status') == 'running' then
  redis.call('HSET', KEYS[1], 'cancel_requested', '1')
  return 1
end
return 0
