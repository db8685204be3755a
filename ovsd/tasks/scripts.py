"""The Lua scripts that change task state: each change of a record, its indexes, its queue entry and the
completion notice happens in one atomic step, so a daemon dying mid-change never leaves them disagreeing."""

from __future__ import annotations

# KEYS: record, queue, unfinished, done[, node_live]   ARGV: id, name, args, kwargs, node, now, ttl
# Returns 1 when queued; 0 when the node is not alive (the record is then written FAILURE, finished).
ENQUEUE = """
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
"""

# KEYS: record, queue   ARGV: group, entry id, now, worker, mode ('new' | 'restart')
# Marks the task STARTED and returns {name, kwargs} when it may run: PENDING, or STARTED
# in 'restart' mode (an idempotent task being run again after an interruption). Otherwise returns the
# status ('MISSING' for an expired record) and acks the entry, except for STARTED in 'new' mode: another
# worker runs it and acks it itself.
START = """
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
"""

# KEYS: record   ARGV: percent
PROGRESS = """
if redis.call('HGET', KEYS[1], 'status') == 'STARTED' then
  redis.call('HSET', KEYS[1], 'progress', ARGV[1])
end
return 1
"""

# KEYS: record, queue, unfinished, done
# ARGV: group, entry id, task id, status, field ('result' | 'error'), value, now, ttl, progress ('' = keep),
#       with_record ('1': return the record's fields too, for the completion hook)
# Records the outcome of an unfinished task, sets its expiry, drops it from the index, acks and deletes
# its queue entry and announces it on the done stream. Returns {written (0|1), record fields or nothing}.
FINISH = """
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
"""

# KEYS: record, unfinished, revoked, done   ARGV: id, now, ttl
# Revokes a task that has not started. Returns 1 if it did, 0 otherwise (unknown, started or finished).
REVOKE = """
if redis.call('HGET', KEYS[1], 'status') ~= 'PENDING' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'REVOKED', 'time_done', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', 10000, '*', 'id', ARGV[1])
return 1
"""

# KEYS: queue   ARGV: group, consumer, entry ids…
# Resets the idle time of the entries still pending for this consumer (so no other worker takes them
# over while they run); an entry another worker has taken over meanwhile is left to it.
TOUCH = """
local kept = 0
for i = 3, #ARGV do
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if pending[1] and pending[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    kept = kept + 1
  end
end
return kept
"""
