-- Replace a subscriber's types and keep the per-type subscriber index in step.
-- KEYS: msg:subs:<sid>, msg:subscribers:<type> for every known type.
-- ARGV: sid, ttl_ms, then for every known type (in the order of its KEYS): name, '1' (wanted) or '0'.
local subs_key = KEYS[1]
local sid, ttl = ARGV[1], tonumber(ARGV[2])
local time = redis.call('TIME')
local expiry = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000) + ttl
redis.call('DEL', subs_key)
local any = false
for i = 2, #KEYS do
  if ARGV[2 * i] == '1' then
    redis.call('SADD', subs_key, ARGV[2 * i - 1])
    redis.call('ZADD', KEYS[i], string.format('%d', expiry), sid)
    any = true
  else
    redis.call('ZREM', KEYS[i], sid)
  end
end
if any then
  redis.call('PEXPIRE', subs_key, ttl)
end
return 1
