-- The message types that at least one live subscriber wants; forgets expired subscribers on the way.
-- KEYS: msg:subscribers:<type> for every known type. ARGV: the type names in the same order.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local live = {}
for i = 1, #KEYS do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', string.format('%d', now))
  if redis.call('ZCARD', KEYS[i]) > 0 then
    live[#live + 1] = ARGV[i]
  end
end
return live
