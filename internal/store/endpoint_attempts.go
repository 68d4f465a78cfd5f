package store

import "github.com/redis/go-redis/v9"

// An endpoint key is per job, and two attempts of one job can run at once
// for a while (a worker called lost runs on while the job's next attempt
// starts elsewhere): the older attempt must neither overwrite the newer
// one's endpoint (its renewals, its drain) nor remove it. Both checks are
// made in the write itself.

// putEndpointScript: KEYS[1] the endpoint; ARGV: the record, its attempt,
// the TTL in ms. 0 when a newer attempt holds the key.
var putEndpointScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur then
  local ok, e = pcall(cjson.decode, cur)
  if ok and type(e) == 'table' and tonumber(e.attempt) and tonumber(e.attempt) > tonumber(ARGV[2]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1
`)

// removeEndpointScript: KEYS[1] the endpoint; ARGV[1] the attempt. It is
// removed only while that attempt holds it.
var removeEndpointScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
local ok, e = pcall(cjson.decode, cur)
if ok and type(e) == 'table' and tonumber(e.attempt) == tonumber(ARGV[1]) then
  return redis.call('DEL', KEYS[1])
end
return 0
`)
