-- Calls of subscribers, served together: refresh each subscription's expiry and read what each may need.
-- KEYS: msg:seq, msg:log, msg:subscribers:<type> for every known type, then msg:subs:<sid> per request.
-- ARGV: ttl_ms, limit, number of known types, their names (in the order of their KEYS), then per request:
-- sid, after (after < 0 only refreshes).
-- Returns {last id, oldest retained id, {{after, scanned up to, {id, type, body, ...}}, ...}, {{types}, ...}}:
-- the log is read once per distinct "after" (a burst of long-polls usually shares one), types per request.
local seq_key, log_key = KEYS[1], KEYS[2]
local ttl, limit, n_types = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local type_index = {}
for i = 1, n_types do
  type_index[ARGV[3 + i]] = KEYS[2 + i]
end
local first_key, first_arg = 3 + n_types, 4 + n_types

local time = redis.call('TIME')
local expiry = string.format('%d', tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000) + ttl)
local seq = tonumber(redis.call('GET', seq_key) or '0')
local oldest = seq + 1
local first = redis.call('XRANGE', log_key, '-', '+', 'COUNT', 1)
if #first > 0 then
  oldest = tonumber(string.match(first[1][1], '^%d+'))
end

local typesets, logs, read = {}, {}, {}
for n = 1, #KEYS - first_key + 1 do
  local subs_key = KEYS[first_key + n - 1]
  local sid = ARGV[first_arg + 2 * (n - 1)]
  local after = tonumber(ARGV[first_arg + 2 * (n - 1) + 1])
  local types = redis.call('SMEMBERS', subs_key)
  if #types > 0 then
    redis.call('PEXPIRE', subs_key, ttl)
    for _, t in ipairs(types) do
      if type_index[t] then
        redis.call('ZADD', type_index[t], expiry, sid)
      end
    end
  end
  typesets[n] = types
  if after >= 0 and after < seq and not read[after] then
    read[after] = true
    local entries = redis.call('XRANGE', log_key, string.format('(%d-0', after), '+', 'COUNT', limit)
    local scanned = seq
    if #entries >= limit then
      scanned = tonumber(string.match(entries[#entries][1], '^%d+'))
    end
    local flat = {}
    for _, entry in ipairs(entries) do
      local fields = entry[2] -- at, <ms>, type, <type>, body, <json>
      flat[#flat + 1] = tonumber(string.match(entry[1], '^%d+'))
      flat[#flat + 1] = fields[4]
      flat[#flat + 1] = fields[6]
    end
    logs[#logs + 1] = {after, scanned, flat}
  end
end
return {seq, oldest, logs, typesets}
