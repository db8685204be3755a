-- Delete one object and its index entries atomically, unless other objects still point to it.
-- ARGV: kind, guid, expected_version (-1: any), detail_json
-- detail_json: {"unique": [[field, value], ...], "relations": [[relation, [guids]], ...],
--               "referenced_by": [[reverse_name, source_kind, relation], ...], "dynamics": [name, ...]}
-- Key names come from ovsd/store/keys.py (obj_key, unique_key…: see ovsd/store/scripts.py).
local kind, guid = ARGV[1], ARGV[2]
local expected = tonumber(ARGV[3])
local detail = cjson.decode(ARGV[4])
local okey = obj_key(kind, guid)
local raw = redis.call('GET', okey)
if not raw then return {'error', 'not_found', guid} end
local current = tonumber(cjson.decode(raw)['_version']) or 0
if expected >= 0 and current ~= expected then return {'error', 'version', tostring(current)} end
for _, ref in ipairs(detail['referenced_by']) do
  if redis.call('SCARD', reverse_key(ref[2], ref[3], guid)) > 0 then
    return {'error', 'in_use', ref[1]}
  end
end
for _, u in ipairs(detail['unique']) do
  local ukey = unique_key(kind, u[1], u[2])
  if redis.call('GET', ukey) == guid then redis.call('DEL', ukey) end
end
for _, rel in ipairs(detail['relations']) do
  for _, target in ipairs(rel[2]) do
    redis.call('SREM', reverse_key(kind, rel[1], target), guid)
  end
end
for _, name in ipairs(detail['dynamics']) do
  redis.call('DEL', dynamic_key(kind, guid, name))
end
redis.call('DEL', okey)
redis.call('SREM', index_key(kind), guid)
return {'ok', tostring(current)}
