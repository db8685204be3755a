-- Everything an authenticated call needs to know about a bearer token, in one round trip.
-- ARGV: the digest of the token (keys.unique('bearertoken', 'access_token', digest) holds its guid).
-- Returns an empty array when there is no such token, else a flat array of strings (parsed by the client's C
-- reader, no JSON to decode): token guid, expiration (%.17g: the exact double), client guid, user guid,
-- username, '1' if the user is active else '0', then the token's role guids. The user guid is '' when the
-- client or the user is gone. The client and user documents are read inside the store: only what an Identity
-- needs crosses the socket.

-- cjson refuses a document holding a lone surrogate escape (a client name an earlier release stored): its
-- owner is then read from the compact JSON text, where a quote-colon-quote is never inside a string
local function owner_of(raw)
  local ok, doc = pcall(cjson.decode, raw)
  if ok then return doc['user_guid'] end
  return string.match(raw, '"user_guid":"([0-9a-fA-F-]+)"')
end
local guid = redis.call('GET', unique_key('bearertoken', 'access_token', ARGV[1]))
if not guid then return {} end
local raw = redis.call('GET', obj_key('bearertoken', guid))
if not raw then return {} end
local token = cjson.decode(raw)
local expiration = tonumber(token['expiration']) or 0
local user_guid, username, active = '', '', '0'
local client_guid = token['client_guid']
if type(client_guid) == 'string' then
  local client = redis.call('GET', obj_key('client', client_guid))
  if client then
    local owner = owner_of(client)
    if type(owner) == 'string' then
      local user = redis.call('GET', obj_key('user', owner))
      if user then
        local fields = cjson.decode(user)
        user_guid = owner
        username = type(fields['username']) == 'string' and fields['username'] or 'None'
        if fields['is_active'] == true then active = '1' end
      end
    end
  else
    client_guid = ''
  end
else
  client_guid = ''
end
local out = {guid, string.format('%.17g', expiration), client_guid, user_guid, username, active}
if type(token['roles_guids']) == 'table' then
  for _, role in ipairs(token['roles_guids']) do out[#out + 1] = role end
end
return out
