-- KEYS: record, queue   ARGV: group, entry id, now, worker, mode ('new' | 'restart')
-- Marks the task STARTED and returns {name, kwargs} when it may run: PENDING, or STARTED
-- in 'restart' mode (an idempotent task being run again after an interruption). Otherwise returns the
-- status ('MISSING' for an expired record) and acks the entry, except for STARTED in 'new' mode: another
-- worker runs it and acks it itself.
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'PENDING' or (status == 'STARTED' and ARGV[5] == 'restart') then
  redis.call('HSET', KEYS[1], 'status', 'STARTED', 'time_start', ARGV[3], 'worker', ARGV[4])
  return redis.call('HMGET', KEYS[1], 'name', 'kwargs')
end
if status == 'STARTED' then return status end
redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[2], ARGV[2])
if not status then return 'MISSING' end
return status
