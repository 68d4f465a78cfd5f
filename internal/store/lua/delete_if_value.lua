-- Release a lock or lease (the scheduler lease, a schedule's firing lock)
-- that its holder still holds.
--
-- KEYS[1] -> the lock
-- --
-- ARGV[1] -> holder
--
-- Returns 1 when it was the holder's and is now gone, else 0.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
