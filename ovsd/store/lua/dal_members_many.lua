-- The reverse index of a relation for many targets. ARGV: the source kind, the relation, then target guids.
-- Returns the members of each reverse index set, in the order of the guids.
local kind, relation = ARGV[1], ARGV[2]
local out = {}
for i = 3, #ARGV do out[i - 2] = redis.call('SMEMBERS', reverse_key(kind, relation, ARGV[i])) end
return out
