-- Extend a lock only if it is still ours.
-- KEYS: the lock   ARGV: our owner token, the new time to live (ms). Returns 1 when renewed, else 0.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
