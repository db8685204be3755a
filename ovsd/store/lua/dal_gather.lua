-- An object (optionally), any number of sets (reverse indexes) and strings (cached dynamics), in one call.
-- ARGV: the object key ('' for none), the number n of set keys, n set keys, then string keys.
-- Returns one JSON text: [object json or false, [members of each set]..., each string or false...]. One
-- bulk reply rather than a nested one: a client without a C parser pays a reactor turn per bulk string.
local out = {false}
if ARGV[1] ~= '' then out[1] = redis.call('GET', ARGV[1]) end
local n = tonumber(ARGV[2])
for i = 3, n + 2 do out[#out + 1] = redis.call('SMEMBERS', ARGV[i]) end
for i = n + 3, #ARGV do out[#out + 1] = redis.call('GET', ARGV[i]) end
return cjson.encode(out)
