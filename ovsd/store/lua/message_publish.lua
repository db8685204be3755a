-- Append one message under the next cluster-wide id, then trim the log to its retention window.
-- KEYS: msg:seq, msg:log. ARGV: type, body (JSON text), keep_count, keep_ms. Returns the new id.
-- Entries are (at = server time in ms, type, body) with stream id "<n>-0", n consecutive.
local seq_key, log_key = KEYS[1], KEYS[2]
local id = redis.call('INCR', seq_key)
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('XADD', log_key, string.format('%d-0', id), 'at', string.format('%d', now),
  'type', ARGV[1], 'body', ARGV[2])

-- An entry may go only when it is BOTH outside the last keep_count entries and older than keep_ms.
-- Ids are consecutive, so "outside the last keep_count" is "id <= bound"; entries are in time order,
-- so the trim point is the first entry that is inside the bound or young enough.
local bound = id - tonumber(ARGV[3])
if bound < 1 then
  return id
end
local cutoff = now - tonumber(ARGV[4])
local start = '-'
local batch = 1 -- the usual case looks at one or two entries: each publish adds exactly one
local examined = 0
local minid = nil
while examined < 1000 do
  local entries = redis.call('XRANGE', log_key, start, string.format('%d-0', bound), 'COUNT', batch)
  local done = #entries < batch
  for _, entry in ipairs(entries) do
    local entry_id = tonumber(string.match(entry[1], '^%d+'))
    if tonumber(entry[2][2]) > cutoff then
      done = true
      break
    end
    minid = entry_id + 1
  end
  examined = examined + #entries
  if done then
    break
  end
  start = '(' .. entries[#entries][1]
  batch = math.min(batch * 4, 256)
end
if minid ~= nil then
  redis.call('XTRIM', log_key, 'MINID', string.format('%d-0', minid))
end
return id
