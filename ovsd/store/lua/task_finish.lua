-- KEYS: record, queue, unfinished, done
-- ARGV: group, entry id, task id, status, field ('result' | 'error'), value, now, ttl, progress ('' = keep),
--       with_record ('1': return the record's fields too, for the completion hook)
-- Records the outcome of an unfinished task, sets its expiry, drops it from the index, acks and deletes
-- its queue entry and announces it on the done stream. Returns {written (0|1), record fields or nothing}.
local status = redis.call('HGET', KEYS[1], 'status')
local written = 0
if status == 'STARTED' or status == 'PENDING' then
  redis.call('HSET', KEYS[1], 'status', ARGV[4], ARGV[5], ARGV[6], 'time_done', ARGV[7])
  if ARGV[9] ~= '' then redis.call('HSET', KEYS[1], 'progress', ARGV[9]) end
  redis.call('EXPIRE', KEYS[1], ARGV[8])
  redis.call('SREM', KEYS[3], ARGV[3])
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', 10000, '*', 'id', ARGV[3])
  written = 1
end
redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[2], ARGV[2])
if ARGV[10] == '1' then return {written, redis.call('HGETALL', KEYS[1])} end
return {written}
