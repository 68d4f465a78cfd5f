-- Reserve: a queued attempt is given to a worker, and GPUs of it, under a
-- new placement number (see Store.Reserve).
--
-- KEYS[1] -> {jobgate}:job:<id>
-- KEYS[2] -> {jobgate}:worker:<worker>:gpus
-- --
-- ARGV[1] -> attempt
-- ARGV[2] -> worker
-- ARGV[3] -> reason
-- ARGV[4] -> reason code
-- ARGV[5] -> job id
-- ARGV[6...] -> the worker's GPU indexes it takes
--
-- Returns {worker, placement} (an earlier reservation's, when there is one);
-- {'', '0', 'gpu'} when a GPU is another job's; nil when the job is not that
-- queued attempt.
if redis.call('HGET', KEYS[1], 'status') ~= 'queued' then return false end
if redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[1] then return false end
local w = redis.call('HGET', KEYS[1], 'placed_on')
if w then return {w, redis.call('HGET', KEYS[1], 'placement')} end
for i = 6, #ARGV do
  local holder = redis.call('HGET', KEYS[2], ARGV[i])
  if holder and holder ~= ARGV[5] then return {'', '0', 'gpu'} end
end
local gpus = {}
for i = 6, #ARGV do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[5])
  table.insert(gpus, ARGV[i])
end
local n = redis.call('HINCRBY', KEYS[1], 'placement', 1)
redis.call('HSET', KEYS[1], 'placed_on', ARGV[2], 'reason', ARGV[3], 'reason_code', ARGV[4])
if #gpus > 0 then redis.call('HSET', KEYS[1], 'gpus', table.concat(gpus, ',')) end
return {ARGV[2], tostring(n)}
