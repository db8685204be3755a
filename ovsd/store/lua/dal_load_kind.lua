-- Every object of a kind. ARGV: the kind. Returns one text: guid, newline, JSON, newline, guid … (guids are
-- GUIDs and compact JSON escapes every control character, so a newline is never part of either). One bulk
-- reply instead of two per object: a client parses 20,000 small replies one at a time, a single one at once.
local kind = ARGV[1]
local out = {}
for _, guid in ipairs(redis.call('SMEMBERS', index_key(kind))) do
  local raw = redis.call('GET', obj_key(kind, guid))
  if raw then
    out[#out + 1] = guid
    out[#out + 1] = raw
  end
end
return table.concat(out, '\n')
