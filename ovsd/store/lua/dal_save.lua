-- Save one object of the object model atomically with all its index upkeep.
-- ARGV: kind, guid, expected_version (0: the object must not exist yet), object_json, changes_json
-- changes_json: {"unique": [[field, old|false, new|false], ...],
--                "relations": [[relation, target_kind, [removed guids], [added guids]], ...],
--                "dynamics": [cached dynamic names to invalidate]}
-- Returns {"ok", version} or {"error", code, detail}. Nothing is written unless every check passed, and the
-- script runs atomically, so an object and its indexes never disagree, whatever happens to the caller.
-- Key names come from ovsd/store/keys.py (obj_key, unique_key…: see ovsd/store/scripts.py).
local kind, guid = ARGV[1], ARGV[2]
local expected = tonumber(ARGV[3])
local object_json = ARGV[4]
local changes = cjson.decode(ARGV[5])
local okey = obj_key(kind, guid)

local raw = redis.call('GET', okey)
local current = 0
if raw then
  -- the repository writes _version last; an object an earlier release stored with a lone-surrogate escape is
  -- refused by cjson, and must stay writable (a PATCH is how an operator repairs it)
  local parsed, document = pcall(cjson.decode, raw)
  if parsed then
    current = tonumber(document['_version']) or 0
  else
    current = tonumber(string.match(raw, '"_version":(%d+)}$')) or 0
  end
  if expected == 0 then return {'error', 'exists', guid} end
elseif expected ~= 0 then
  return {'error', 'not_found', guid}
end
if current ~= expected then return {'error', 'version', tostring(current)} end

for _, rel in ipairs(changes['relations']) do
  for _, target in ipairs(rel[4]) do
    if redis.call('EXISTS', obj_key(rel[2], target)) == 0 then
      return {'error', 'relation', rel[1] .. ':' .. target}
    end
  end
end
for _, u in ipairs(changes['unique']) do
  local new = u[3]
  if new then
    local owner = redis.call('GET', unique_key(kind, u[1], new))
    if owner and owner ~= guid then return {'error', 'unique', u[1]} end
  end
end

for _, u in ipairs(changes['unique']) do
  local old, new = u[2], u[3]
  if old then
    local okey2 = unique_key(kind, u[1], old)
    if redis.call('GET', okey2) == guid then redis.call('DEL', okey2) end
  end
  if new then redis.call('SET', unique_key(kind, u[1], new), guid) end
end
for _, rel in ipairs(changes['relations']) do
  for _, old in ipairs(rel[3]) do
    redis.call('SREM', reverse_key(kind, rel[1], old), guid)
  end
  for _, new in ipairs(rel[4]) do
    redis.call('SADD', reverse_key(kind, rel[1], new), guid)
  end
end
for _, name in ipairs(changes['dynamics']) do
  redis.call('DEL', dynamic_key(kind, guid, name))
end
redis.call('SET', okey, object_json)
redis.call('SADD', index_key(kind), guid)
return {'ok', tostring(current + 1)}
