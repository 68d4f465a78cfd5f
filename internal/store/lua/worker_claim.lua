-- ClaimWorker: a worker process registers under its worker ID, unless
-- another live process holds the ID.
--
-- KEYS[1] -> {jobgate}:worker:<id>
-- KEYS[2] -> {jobgate}:workers
-- --
-- ARGV[1] -> worker id
-- ARGV[2] -> instance (this process)
-- ARGV[3] -> live for, ms: a holder heartbeating within it is alive
-- ARGV[4] -> an instance that may be replaced even so ('' = none)
-- ARGV[5] -> the status of a worker that shut down (store.WorkerStopped)
-- ARGV[6...] -> the registration's field, value pairs
--
-- Returns {'ok'}, or {'busy', instance, hostname, proc, status, started_at,
-- silent ms} of the live holder.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cur = redis.call('HGET', KEYS[1], 'instance')
if cur and cur ~= '' and cur ~= ARGV[2] and cur ~= ARGV[4] then
  local status = redis.call('HGET', KEYS[1], 'status')
  local beat = redis.call('ZSCORE', KEYS[2], ARGV[1])
  if status ~= ARGV[5] and beat and now - tonumber(beat) < tonumber(ARGV[3]) then
    local h = redis.call('HMGET', KEYS[1], 'hostname', 'proc', 'started_at')
    return {'busy', cur, h[1] or '', h[2] or '', status or '', h[3] or '', tostring(now - tonumber(beat))}
  end
end
for i = 6, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('ZADD', KEYS[2], now, ARGV[1])
return {'ok'}
