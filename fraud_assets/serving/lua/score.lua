-- The scoring step of RedisFeatureStore (online_features.py): one atomic call per transaction.
-- KEYS: 1 customer zset, 2 terminal zset, 3 terminal fraud zset, 4 id index (hash id ->
--       version), 5 id times (zset id by time), 6 clock (string: newest time held), 7 ratios
--       (hash id -> own 30-day ratio, written once, pruned with the id index).
-- ARGV: 1 t, 2 customer member, 3 padded id, 4 id, 5 customer retention, 6 terminal retention,
--       7 ttl (0: none), 8 n windows, 9 widest customer lower edge, 10 terminal upper edge,
--       11 version, 12 max skew, 13..12+n customer lower edges, 13+n..12+2n terminal lower edges,
--       13+2n late grace, 14+2n lower edge of the terminal's fraud-run window, 15+2n the
--       (1-based) window whose mean judges an outlier, 16+2n the outlier ratio, 17+2n lower
--       edge of the card's earlier-outliers window.
-- Replies: {"version", <stored version>} when the id is held with another version (the caller
-- scores that one instead); {"future"|"stale", clock} when the time guard refuses; otherwise
-- {"ok", counts and sums...}. Customer members are "<20-digit id>:<amount>:<outlier 1/0>"
-- scored by time (ARGV[2] is the member without its flag; state from before the flag has no
-- ":<flag>" and is read as 0): ZRANGEBYSCORE returns them in (time, id) order, and members in
-- the current second with a larger id are skipped. A new member's flag is its own ratio over
-- the outlier window's mean, computed here once and never revised. Sums are returned as %.17g strings (a Lua number reply would be
-- truncated to an integer).
local t = tonumber(ARGV[1])
local pid = ARGV[3]
local n = tonumber(ARGV[8])
local prev = redis.call('HGET', KEYS[4], ARGV[4])
if prev and prev ~= ARGV[11] then return {'version', prev} end
local clock = tonumber(redis.call('GET', KEYS[6]))
if (not prev) and clock then
  if t > clock + tonumber(ARGV[12]) then return {'future', tostring(clock)} end
  if t <= clock - tonumber(ARGV[5]) then return {'stale', tostring(clock)} end
end
local base = t
local grace = tonumber(ARGV[13 + 2 * n])
if clock and clock + grace < t then base = clock + grace end
if not prev then
  redis.call('HSET', KEYS[4], ARGV[4], ARGV[11])
  redis.call('ZADD', KEYS[5], t, ARGV[4])
end
if (not clock) or t > clock then redis.call('SET', KEYS[6], ARGV[1]) end
local held = nil
if prev then
  for _, m in ipairs({ARGV[2] .. ':1', ARGV[2] .. ':0', ARGV[2]}) do
    if redis.call('ZSCORE', KEYS[1], m) then
      held = m
      break
    end
  end
end
if not held then redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2] .. ':0') end
local rows = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[9], ARGV[1], 'WITHSCORES')
local counts, sums, lows = {}, {}, {}
for i = 1, n do
  counts[i] = 0
  sums[i] = 0
  lows[i] = tonumber(ARGV[12 + i])
end
local prior_low = tonumber(ARGV[17 + 2 * n])
local prior = 0
for j = 1, #rows, 2 do
  local member = rows[j]
  local s = tonumber(rows[j + 1])
  local id = string.sub(member, 1, 20)
  if s < t or id <= pid then
    local body = string.sub(member, 22)
    local flag = string.sub(body, -2)
    if flag == ':1' or flag == ':0' then body = string.sub(body, 1, -3) end
    local amount = tonumber(body)
    for i = 1, n do
      if s > lows[i] then
        counts[i] = counts[i] + 1
        sums[i] = sums[i] + amount
      end
    end
    if flag == ':1' and s > prior_low and id ~= pid then prior = prior + 1 end
  end
end
local k = tonumber(ARGV[15 + 2 * n])
local ratio = tonumber(string.sub(ARGV[2], 22)) / (sums[k] / counts[k])
if not prev then redis.call('HSET', KEYS[7], ARGV[4], string.format('%.17g', ratio)) end
if (not held) and ratio > tonumber(ARGV[16 + 2 * n]) then
  redis.call('ZREM', KEYS[1], ARGV[2] .. ':0')
  redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2] .. ':1')
end
local out = {'ok'}
for i = 1, n do
  out[#out + 1] = counts[i]
  out[#out + 1] = string.format('%.17g', sums[i])
end
for i = 1, n do
  local low = '(' .. ARGV[12 + n + i]
  out[#out + 1] = redis.call('ZCOUNT', KEYS[2], low, ARGV[10])
  out[#out + 1] = redis.call('ZCOUNT', KEYS[3], low, ARGV[10])
end
-- terminal_fraud_run_days and terminal_fraud_run_min_amount: the known entries of the run
-- window in (time, id) order (ids compared as numbers: shorter decimal string first), walked
-- back over frauds; each fraud's amount is the 4th field of its version in the id index.
local known = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. ARGV[14 + 2 * n], ARGV[10], 'WITHSCORES')
local entries = {}
for j = 1, #known, 2 do entries[#entries + 1] = {tonumber(known[j + 1]), known[j]} end
table.sort(entries, function(a, b)
  if a[1] ~= b[1] then return a[1] < b[1] end
  if #a[2] ~= #b[2] then return #a[2] < #b[2] end
  return a[2] < b[2]
end)
local run_start = nil
local run_min = nil
local run_ratio = nil
for j = #entries, 1, -1 do
  if not redis.call('ZSCORE', KEYS[3], entries[j][2]) then break end
  run_start = entries[j][1]
  -- A transaction later than the grace can reach entries whose version is pruned: skipped
  -- (likewise a ratio missing from state written before ratios were kept).
  local version = redis.call('HGET', KEYS[4], entries[j][2])
  if version then
    local amount = tonumber(string.match(version, '^[^|]*|[^|]*|[^|]*|([^|]*)|'))
    if (not run_min) or amount < run_min then run_min = amount end
  end
  local own = tonumber(redis.call('HGET', KEYS[7], entries[j][2]))
  if own and ((not run_ratio) or own < run_ratio) then run_ratio = own end
end
out[#out + 1] = run_start and string.format('%d', t - run_start) or '0'
out[#out + 1] = run_min and string.format('%.17g', run_min) or '0'
out[#out + 1] = run_ratio and string.format('%.17g', run_ratio) or '0'
out[#out + 1] = prior
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[4])
local ccut = base - tonumber(ARGV[5])
local tcut = base - tonumber(ARGV[6])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ccut)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', tcut)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', tcut)
local old = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', tcut, 'LIMIT', 0, 64)
if #old > 0 then
  redis.call('HDEL', KEYS[4], unpack(old))
  redis.call('HDEL', KEYS[7], unpack(old))
  redis.call('ZREM', KEYS[5], unpack(old))
end
local ttl = tonumber(ARGV[7])
if ttl > 0 then
  for k = 1, 3 do redis.call('EXPIRE', KEYS[k], ttl) end
end
return out
