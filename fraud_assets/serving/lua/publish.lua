-- Snapshot publishing of RedisFeatureStore (online_features.py).
-- Publishes rows of a snapshot, first version per id wins. KEYS: 1 id index, 2 id times,
-- 3 clock, 4 ratios (hash id -> own 30-day ratio), then per row: customer zset, terminal
-- zset, terminal fraud zset (the fraud set of the version already held, when the caller
-- found one).
-- ARGV: 1 customer lower edge (older rows skip the customer set), 2 newest time, then per
-- row: id, time, customer member, version, fraud (1/0), label time (of the held version),
-- own 30-day ratio.
local customer_from = tonumber(ARGV[1])
local added = 0
local k = 5
local a = 3
while a <= #ARGV do
  local id, t, member, version = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local time = ARGV[a + 5]
  if not redis.call('HGET', KEYS[1], id) then
    redis.call('HSET', KEYS[1], id, version)
    redis.call('ZADD', KEYS[2], t, id)
    redis.call('HSET', KEYS[4], id, ARGV[a + 6])
    if tonumber(t) > customer_from then redis.call('ZADD', KEYS[k], t, member) end
    redis.call('ZADD', KEYS[k + 1], t, id)
    added = added + 1
    time = t
  end
  if ARGV[a + 4] == '1' then
    redis.call('ZADD', KEYS[k + 2], time, id)
  else
    redis.call('ZREM', KEYS[k + 2], id)
  end
  k = k + 3
  a = a + 7
end
local clock = tonumber(redis.call('GET', KEYS[3]))
if (not clock) or tonumber(ARGV[2]) > clock then redis.call('SET', KEYS[3], ARGV[2]) end
return added
