-- Sets fields of a job record that exists, creating no stray record for a
-- job that is gone (MLflow's run lifecycle and run_name).
-- KEYS[1] the job record
-- ARGV field, value, field, value, ...
-- Returns 1 when set, 0 when there is no such record.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
