-- GCRA token buckets, every limit of one node decided together (django_rb.ratelimit).
--
-- One key per bucket holds its theoretical arrival time (TAT, microseconds on the server's
-- clock). KEYS: the buckets. ARGV[1]: "now" in microseconds, or "" for the server's TIME.
-- ARGV[2]: "1" to spend tokens, "0" to only look. Then three values per key: the emission
-- interval (microseconds per token), the burst (bucket size, tokens) and the cost (tokens).
--
-- If any limit is over, no bucket is written: a request blocked by one limit spends none of
-- the others' tokens. A key named twice is charged for both uses.
-- Reply: four integers per key: allowed (1/0), remaining tokens, microseconds until the cost
-- can be paid (0 when allowed) and microseconds until the bucket is full again.

local now
if ARGV[1] ~= "" then
  now = tonumber(ARGV[1])
else
  local t = redis.call("TIME")
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local spend = ARGV[2] == "1"
local slack = 0.001 -- microseconds, absorbs float error from fractional intervals

local tats = {}
local rows = {}
local blocked = false
for i, key in ipairs(KEYS) do
  local base = 2 + (i - 1) * 3
  local interval = tonumber(ARGV[base + 1])
  local burst = tonumber(ARGV[base + 2])
  local cost = tonumber(ARGV[base + 3])
  local tat = tats[key]
  if tat == nil then
    local stored = redis.call("GET", key)
    tat = stored and tonumber(stored) or now
  end
  if tat < now then
    tat = now
  end
  local tau = burst * interval
  local new_tat = tat + cost * interval
  local allowed = new_tat - now <= tau + slack
  if allowed then
    tats[key] = new_tat
  else
    tats[key] = tat
    blocked = true
  end
  rows[i] = {allowed, interval, tau, tat, new_tat}
end

local reply = {}
for i, row in ipairs(rows) do
  local allowed, interval, tau, tat, new_tat = row[1], row[2], row[3], row[4], row[5]
  local level = tat
  if allowed and spend and not blocked then
    level = new_tat
  end
  local remaining = math.floor((tau - (level - now)) / interval + slack)
  if remaining < 0 then
    remaining = 0
  end
  local retry = 0
  if not allowed then
    retry = math.ceil(new_tat - tau - now - slack)
  end
  local n = #reply
  reply[n + 1] = allowed and 1 or 0
  reply[n + 2] = remaining
  reply[n + 3] = retry
  reply[n + 4] = math.ceil(level - now - slack)
end

if spend and not blocked then
  for key, tat in pairs(tats) do
    local ttl = math.ceil((tat - now) / 1000)
    if ttl > 0 then
      redis.call("SET", key, string.format("%.3f", tat), "PX", ttl)
    end
  end
end
return reply
