-- KEYS: record   ARGV: percent
if redis.call('HGET', KEYS[1], 'status') == 'STARTED' then
  redis.call('HSET', KEYS[1], 'progress', ARGV[1])
end
return 1
