-- Delete a lock only if it is still ours (it may have expired and been taken by another node).
-- KEYS: the lock   ARGV: our owner token. Returns 1 when it was released, else 0.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
