-- SetParams: a job's params, all or none; a param never changes.
--
-- KEYS[1] -> {jobgate}:job:<id>:params
-- --
-- ARGV[1] -> max params
-- ARGV[2...] -> key, value pairs
--
-- Returns '', or 'changed:' and the key whose value differs, or 'full'.
for i = 2, #ARGV, 2 do
  local old = redis.call('HGET', KEYS[1], ARGV[i])
  if old and old ~= ARGV[i+1] then return 'changed:' .. ARGV[i] end
end
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i+1]) end
if redis.call('HLEN', KEYS[1]) > tonumber(ARGV[1]) then
  for i = 2, #ARGV, 2 do redis.call('HDEL', KEYS[1], ARGV[i]) end
  return 'full'
end
return ''
