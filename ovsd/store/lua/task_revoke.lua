-- KEYS: record, unfinished, revoked, done   ARGV: id, now, ttl
-- Revokes a task that has not started. Returns 1 if it did, 0 otherwise (unknown, started or finished).
if redis.call('HGET', KEYS[1], 'status') ~= 'PENDING' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'REVOKED', 'time_done', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', 10000, '*', 'id', ARGV[1])
return 1
