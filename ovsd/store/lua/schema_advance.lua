-- Move the schema version on only from the version the migration step started at.
-- KEYS: the schema version   ARGV: the version the step started at, the version it reached.
-- Returns the version now stored.
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current ~= tonumber(ARGV[1]) then return current end
redis.call('SET', KEYS[1], ARGV[2])
return tonumber(ARGV[2])
