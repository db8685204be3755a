-- The members of a set of GUIDs (a kind's index). KEYS: the set. Returns them in one text, separated by
-- newlines (see dal_load_kind.lua).
return table.concat(redis.call('SMEMBERS', KEYS[1]), '\n')
