-- KEYS: queue   ARGV: group, consumer, entry ids…
-- Resets the idle time of the entries still pending for this consumer (so no other worker takes them
-- over while they run); an entry another worker has taken over meanwhile is left to it.
local kept = 0
for i = 3, #ARGV do
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if pending[1] and pending[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    kept = kept + 1
  end
end
return kept
