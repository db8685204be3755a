-- Compare-and-set on a whole string: replace it only if it is still the value read (a missing key reads '').
-- KEYS: the string   ARGV: the value read before ('' for none), the new value.
-- Returns 1 when the value was still the one read (and is now the new one), else 0.
local seen = redis.call('GET', KEYS[1]) or ''
if seen ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
return 1
