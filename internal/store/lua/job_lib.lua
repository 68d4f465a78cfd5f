-- Shared by the job transitions (job_*.lua): the store puts it in front of
-- each. It makes no key name; every key is the caller's, through KEYS.

-- setstatus moves job id (hash job) from the status index from to the index
-- to, and sets its status to new.
local function setstatus(job, id, from, to, new)
  redis.call('ZREM', from, id)
  redis.call('ZADD', to, 0, id)
  redis.call('HSET', job, 'status', new)
end

local function terminal(st)
  return st == 'succeeded' or st == 'failed' or st == 'canceled'
end

-- placedas reports whether the keys were made for the record: its workspace
-- is ws and it is placed on worker ('' = on none).
local function placedas(job, ws, worker)
  local h = redis.call('HMGET', job, 'workspace', 'placed_on')
  return h[1] == ws and (h[2] or '') == worker
end

-- rekey is the answer when the keys were made for another workspace or
-- worker than the record's: the caller makes them for ws and worker and
-- calls again.
local function rekey(job, worker)
  local h = redis.call('HMGET', job, 'workspace', 'placed_on')
  return {'rekey', h[1] or '', worker or h[2] or ''}
end

-- release frees what job id's attempt holds: its place in running, its
-- workspace's set of jobs that hold a worker slot (for max_running_jobs),
-- and the GPUs it holds in alloc, the GPU allocations of the worker it is
-- placed on (only those still held by this job).
local function release(job, id, running, alloc)
  redis.call('SREM', running, id)
  local w = redis.call('HGET', job, 'placed_on')
  local g = redis.call('HGET', job, 'gpus')
  if w and g then
    for idx in string.gmatch(g, '%d+') do
      if redis.call('HGET', alloc, idx) == id then redis.call('HDEL', alloc, idx) end
    end
  end
  redis.call('HDEL', job, 'preempt_requested')
end
