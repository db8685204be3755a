-- KEYS: record, queue, unfinished, done[, node_live]   ARGV: id, name, args, kwargs, node, now, ttl
-- Returns 1 when queued; 0 when the node is not alive (the record is then written FAILURE, finished).
local id, node, now = ARGV[1], ARGV[5], ARGV[6]
if #KEYS >= 5 and redis.call('EXISTS', KEYS[5]) == 0 then
  redis.call('HSET', KEYS[1], 'id', id, 'name', ARGV[2], 'args', ARGV[3], 'kwargs', ARGV[4], 'node', node,
             'status', 'FAILURE', 'error', 'node_unavailable: ' .. node, 'time_created', now, 'time_done', now)
  redis.call('EXPIRE', KEYS[1], ARGV[7])
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', 10000, '*', 'id', id)
  return 0
end
redis.call('HSET', KEYS[1], 'id', id, 'name', ARGV[2], 'args', ARGV[3], 'kwargs', ARGV[4],
           'status', 'PENDING', 'time_created', now)
if node ~= '' then redis.call('HSET', KEYS[1], 'node', node) end
redis.call('SADD', KEYS[3], id)
redis.call('XADD', KEYS[2], '*', 'id', id)
return 1
