-- An object (optionally), any number of sets (reverse indexes) and strings (cached dynamics), in one call.
-- ARGV: the object key ('' for none), the number n of set keys, n set keys, then string keys.
-- Returns [object json or nil, [members of each set]..., each string or nil...] as a plain (nested) reply:
-- the store connection's C parser reads it directly, where one JSON text holding the cached dynamics' JSON
-- was decoded twice in Python on every fetch.
local out = {false}
if ARGV[1] ~= '' then out[1] = redis.call('GET', ARGV[1]) end
local n = tonumber(ARGV[2])
for i = 3, n + 2 do out[#out + 1] = redis.call('SMEMBERS', ARGV[i]) end
for i = n + 3, #ARGV do out[#out + 1] = redis.call('GET', ARGV[i]) end
return out
