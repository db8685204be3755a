-- Every write of the object model: a change set of saves and deletes, with their index upkeep, all or nothing
-- (a single save or delete is a set of one).
-- ARGV[1]: plan_json; ARGV[2..]: the documents of the saves (plan entries name theirs by position, so the
-- stored text is exactly what the repository wrote, never decoded and encoded again here).
-- plan_json: {"guards": [["members", kind, relation, target, [guids]], ["version", kind, guid, version], ...],
--             "ops": [["save", kind, guid, expected_version (0: create), document_argv_index, changes], ...
--                     ["delete", kind, guid, expected_version (-1: any), detail], ...]}
-- changes: {"unique": [[field, old|false, new|false], ...],
--           "relations": [[relation, target_kind, [removed guids], [added guids]], ...],
--           "dynamics": [cached dynamic names to invalidate]}
-- detail: {"unique": [[field, value], ...], "relations": [[relation, [guids]], ...],
--          "referenced_by": [[reverse_name, source_kind, relation], ...], "dynamics": [name, ...]}
-- A guard says what the caller read and planned from: the reverse index of (kind, relation, target) holds
-- exactly these guids (a token issued meanwhile fails it), or an object is still at this version.
-- Every check runs before any write; they see the store as it was before the set, except that what the set
-- itself creates, deletes or unlinks counts as done (a client and its grants can be created together, a
-- client deleted with its tokens and grants). The script runs atomically, so objects and their indexes never
-- disagree, whatever happens to the caller. Returns {"ok", version, ...} (one per op: the new version of a
-- saved object, the last of a deleted one) or {"error", code, detail, op_number} (op_number 0: a guard;
-- codes: version, exists, not_found, relation, unique, in_use).
-- Key names come from ovsd/store/keys.py (obj_key, unique_key…: see ovsd/store/scripts.py).
local plan = cjson.decode(ARGV[1])
local ops = plan['ops']

-- the version of a stored document; one an earlier release stored with a lone-surrogate escape is refused
-- by cjson and must stay writable, so its version is read from the text (the repository writes it last)
local function version_of(raw)
  local parsed, document = pcall(cjson.decode, raw)
  if parsed then return tonumber(document['_version']) or 0 end
  return tonumber(string.match(raw, '"_version":(%d+)}$')) or 0
end

for _, g in ipairs(plan['guards']) do
  if g[1] == 'members' then
    local members = redis.call('SMEMBERS', reverse_key(g[2], g[3], g[4]))
    local wanted = {}
    for _, m in ipairs(g[5]) do wanted[m] = true end
    if #members ~= #g[5] then return {'error', 'version', g[3] .. ' of ' .. g[4], '0'} end
    for _, m in ipairs(members) do
      if not wanted[m] then return {'error', 'version', g[3] .. ' of ' .. g[4], '0'} end
    end
  else
    local raw = redis.call('GET', obj_key(g[2], g[3]))
    if not raw or version_of(raw) ~= tonumber(g[4]) then return {'error', 'version', g[2] .. ' ' .. g[3], '0'} end
  end
end

-- what the set does, for the checks: objects it writes or removes, reverse-index members it takes away,
-- unique values it claims
local made, gone, unlinked, claimed = {}, {}, {}, {}
local function unlink(rkey, guid)
  unlinked[rkey] = unlinked[rkey] or {}
  unlinked[rkey][guid] = true
end
for _, op in ipairs(ops) do
  local kind, guid = op[2], op[3]
  if op[1] == 'save' then
    made[obj_key(kind, guid)] = true
    for _, rel in ipairs(op[6]['relations']) do
      for _, old in ipairs(rel[3]) do unlink(reverse_key(kind, rel[1], old), guid) end
    end
  else
    gone[obj_key(kind, guid)] = true
    for _, rel in ipairs(op[5]['relations']) do
      for _, target in ipairs(rel[2]) do unlink(reverse_key(kind, rel[1], target), guid) end
    end
  end
end
local function exists(key)
  if made[key] then return true end
  if gone[key] then return false end
  return redis.call('EXISTS', key) == 1
end

local versions = {}
for n, op in ipairs(ops) do
  local kind, guid, expected = op[2], op[3], tonumber(op[4])
  local raw = redis.call('GET', obj_key(kind, guid))
  local current = 0
  if raw then current = version_of(raw) end
  if op[1] == 'save' then
    if raw and expected == 0 then return {'error', 'exists', guid, tostring(n)} end
    if not raw and expected ~= 0 then return {'error', 'not_found', guid, tostring(n)} end
    if current ~= expected then return {'error', 'version', tostring(current), tostring(n)} end
    local changes = op[6]
    for _, rel in ipairs(changes['relations']) do
      for _, target in ipairs(rel[4]) do
        if not exists(obj_key(rel[2], target)) then
          return {'error', 'relation', rel[1] .. ':' .. target, tostring(n)}
        end
      end
    end
    for _, u in ipairs(changes['unique']) do
      local new = u[3]
      if new then
        local ukey = unique_key(kind, u[1], new)
        local owner = redis.call('GET', ukey)
        if (owner and owner ~= guid and not gone[obj_key(kind, owner)]) or (claimed[ukey] and claimed[ukey] ~= guid) then
          return {'error', 'unique', u[1], tostring(n)}
        end
        claimed[ukey] = guid
      end
    end
    versions[n] = tostring(current + 1)
  else
    if not raw then return {'error', 'not_found', guid, tostring(n)} end
    if expected >= 0 and current ~= expected then return {'error', 'version', tostring(current), tostring(n)} end
    for _, ref in ipairs(op[5]['referenced_by']) do
      local rkey = reverse_key(ref[2], ref[3], guid)
      local leaving = unlinked[rkey] or {}
      for _, member in ipairs(redis.call('SMEMBERS', rkey)) do
        if not leaving[member] then return {'error', 'in_use', ref[1], tostring(n)} end
      end
    end
    versions[n] = tostring(current)
  end
end

for n, op in ipairs(ops) do
  local kind, guid = op[2], op[3]
  local okey = obj_key(kind, guid)
  if op[1] == 'save' then
    local changes = op[6]
    for _, u in ipairs(changes['unique']) do
      local old, new = u[2], u[3]
      if old then
        local ukey = unique_key(kind, u[1], old)
        if redis.call('GET', ukey) == guid then redis.call('DEL', ukey) end
      end
      if new then redis.call('SET', unique_key(kind, u[1], new), guid) end
    end
    for _, rel in ipairs(changes['relations']) do
      for _, old in ipairs(rel[3]) do redis.call('SREM', reverse_key(kind, rel[1], old), guid) end
      for _, new in ipairs(rel[4]) do redis.call('SADD', reverse_key(kind, rel[1], new), guid) end
    end
    for _, name in ipairs(changes['dynamics']) do redis.call('DEL', dynamic_key(kind, guid, name)) end
    redis.call('SET', okey, ARGV[op[5]])
    redis.call('SADD', index_key(kind), guid)
  else
    local detail = op[5]
    for _, u in ipairs(detail['unique']) do
      local ukey = unique_key(kind, u[1], u[2])
      if redis.call('GET', ukey) == guid then redis.call('DEL', ukey) end
    end
    for _, rel in ipairs(detail['relations']) do
      for _, target in ipairs(rel[2]) do redis.call('SREM', reverse_key(kind, rel[1], target), guid) end
    end
    for _, name in ipairs(detail['dynamics']) do redis.call('DEL', dynamic_key(kind, guid, name)) end
    redis.call('DEL', okey)
    redis.call('SREM', index_key(kind), guid)
  end
end
-- built by hand, not unpack(): a set may hold more operations than Lua's C stack takes as arguments
local reply = {'ok'}
for n = 1, #ops do reply[n + 1] = versions[n] end
return reply
