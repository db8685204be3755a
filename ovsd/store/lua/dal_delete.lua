-- Delete one object and its index entries atomically, unless other objects still point to it.
-- ARGV: prefix, kind, guid, expected_version (-1: any), detail_json
-- detail_json: {"unique": [[field, value], ...], "relations": [[relation, [guids]], ...],
--               "referenced_by": [[reverse_name, source_kind, relation], ...], "dynamics": [name, ...]}
local prefix, kind, guid = ARGV[1], ARGV[2], ARGV[3]
local expected = tonumber(ARGV[4])
local detail = cjson.decode(ARGV[5])
local okey = prefix .. 'obj:' .. kind .. ':' .. guid
local raw = redis.call('GET', okey)
if not raw then return {'error', 'not_found', guid} end
local current = tonumber(cjson.decode(raw)['_version']) or 0
if expected >= 0 and current ~= expected then return {'error', 'version', tostring(current)} end
for _, ref in ipairs(detail['referenced_by']) do
  if redis.call('SCARD', prefix .. 'rel:' .. ref[2] .. ':' .. ref[3] .. ':' .. guid) > 0 then
    return {'error', 'in_use', ref[1]}
  end
end
for _, u in ipairs(detail['unique']) do
  local ukey = prefix .. 'uniq:' .. kind .. ':' .. u[1] .. ':' .. u[2]
  if redis.call('GET', ukey) == guid then redis.call('DEL', ukey) end
end
for _, rel in ipairs(detail['relations']) do
  for _, target in ipairs(rel[2]) do
    redis.call('SREM', prefix .. 'rel:' .. kind .. ':' .. rel[1] .. ':' .. target, guid)
  end
end
for _, name in ipairs(detail['dynamics']) do
  redis.call('DEL', prefix .. 'dyn:' .. kind .. ':' .. guid .. ':' .. name)
end
redis.call('DEL', okey)
redis.call('SREM', prefix .. 'idx:' .. kind, guid)
return {'ok', tostring(current)}
