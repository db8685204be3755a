-- One call of a subscriber: refresh its subscription's expiry, then read what it may need, atomically.
-- KEYS: msg:subs:<sid>, msg:seq, msg:log, msg:subscribers:<type> for every known type.
-- ARGV: sid, ttl_ms, after, limit, then the known type names in the order of their KEYS.
-- after < 0 only refreshes. Returns {last id, oldest retained id, scanned up to, {types}, {id, type, body, ...}}.
local subs_key, seq_key, log_key = KEYS[1], KEYS[2], KEYS[3]
local sid, ttl = ARGV[1], tonumber(ARGV[2])
local after, limit = tonumber(ARGV[3]), tonumber(ARGV[4])

local types = redis.call('SMEMBERS', subs_key)
local wanted = {}
for _, t in ipairs(types) do
  wanted[t] = true
end
if #types > 0 then
  local time = redis.call('TIME')
  local expiry = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000) + ttl
  redis.call('PEXPIRE', subs_key, ttl)
  for i = 4, #KEYS do
    if wanted[ARGV[i + 1]] then
      redis.call('ZADD', KEYS[i], string.format('%d', expiry), sid)
    end
  end
end

local seq = tonumber(redis.call('GET', seq_key) or '0')
if after < 0 then
  return {seq, 0, 0, types, {}}
end
local oldest = seq + 1
local first = redis.call('XRANGE', log_key, '-', '+', 'COUNT', 1)
if #first > 0 then
  oldest = tonumber(string.match(first[1][1], '^%d+'))
end
local found = {}
local scanned = seq
if after < seq then
  local entries = redis.call('XRANGE', log_key, string.format('(%d-0', after), '+', 'COUNT', limit)
  if #entries >= limit then
    scanned = tonumber(string.match(entries[#entries][1], '^%d+'))
  end
  for _, entry in ipairs(entries) do
    local fields = entry[2] -- at, <ms>, type, <type>, body, <json>
    if wanted[fields[4]] then
      found[#found + 1] = tonumber(string.match(entry[1], '^%d+'))
      found[#found + 1] = fields[4]
      found[#found + 1] = fields[6]
    end
  end
end
return {seq, oldest, scanned, types, found}
