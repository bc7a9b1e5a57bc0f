-- One request's counter work in one round trip: every limit of the request is tested,
-- then all are spent or none is; usage counters ride along. Same keys and the same
-- arithmetic as the `limits` library's own scripts (acquire_sliding_window.lua,
-- acquire_moving_window.lua, incr_expire.lua), so `limits` reads these counters as its own.
--
-- ARGV[1] = now (seconds, float), ARGV[2] = number of hits; then 5 values per hit:
--   kind ("sliding" | "fixed" | "moving" | "count" | "count_refused"), limit, expiry (s), cost, nkeys
-- KEYS: each hit's keys in order (sliding: previous, current; others: one).
-- Returns {admitted (0/1), then 4 numbers per hit}:
--   sliding: previous count, previous ttl ms, current count, current ttl ms
--   fixed:   count, ttl ms, 0, 0
--   moving:  oldest entry in the window (string seconds), entries in the window, 0, 0
--   count*:  value, 0, 0, 0

local now = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local hits = {}
local k = 1
for i = 1, n do
    local base = 2 + (i - 1) * 5
    local h = {kind = ARGV[base + 1], limit = tonumber(ARGV[base + 2]), expiry = tonumber(ARGV[base + 3]),
               cost = tonumber(ARGV[base + 4]), keys = {}}
    for j = 1, tonumber(ARGV[base + 5]) do
        h.keys[j] = KEYS[k]
        k = k + 1
    end
    hits[i] = h
end

local function sliding_window(h)
    local expiry = h.expiry * 1000
    local current_ttl = tonumber(redis.call('pttl', h.keys[2]))
    if current_ttl > 0 and current_ttl < expiry then
        -- the current window ended: it becomes the previous one
        redis.call('rename', h.keys[2], h.keys[1])
        redis.call('set', h.keys[2], 0, 'PX', current_ttl + expiry)
    end
    local pc = tonumber(redis.call('get', h.keys[1])) or 0
    local pt = tonumber(redis.call('pttl', h.keys[1])) or 0
    local cc = tonumber(redis.call('get', h.keys[2])) or 0
    local ct = tonumber(redis.call('pttl', h.keys[2])) or 0
    if pt < 0 then pt = 0 end
    if ct < 0 then ct = 0 end
    return pc, pt, cc, ct
end

local function admits(h)
    if h.kind == 'count' or h.kind == 'count_refused' then
        return true
    end
    if h.cost > h.limit then
        return false
    end
    if h.kind == 'sliding' then
        local pc, pt, cc = sliding_window(h)
        return math.floor(pc * pt / (h.expiry * 1000)) + cc + h.cost <= h.limit
    elseif h.kind == 'fixed' then
        return (tonumber(redis.call('get', h.keys[1])) or 0) + h.cost <= h.limit
    elseif h.kind == 'moving' then
        local entry = redis.call('lindex', h.keys[1], h.limit - h.cost)
        return not (entry and tonumber(entry) >= now - h.expiry)
    end
    return true
end

local function incr_expire(key, expiry, amount)
    local current = redis.call('incrby', key, amount)
    if tonumber(current) == amount then
        redis.call('expire', key, expiry)
    end
    return current
end

local function spend(h)
    if h.kind == 'sliding' then
        if redis.call('exists', h.keys[2]) == 1 then
            redis.call('incrby', h.keys[2], h.cost)
        else
            redis.call('set', h.keys[2], h.cost, 'PX', h.expiry * 2000)
        end
    elseif h.kind == 'fixed' then
        incr_expire(h.keys[1], h.expiry, h.cost)
    elseif h.kind == 'moving' then
        local entries = {}
        for i = 1, h.cost do entries[i] = now end
        redis.call('lpush', h.keys[1], unpack(entries))
        redis.call('ltrim', h.keys[1], 0, h.limit - 1)
        redis.call('expire', h.keys[1], h.expiry)
    end
end

local function moving_window(h)
    local target = now - h.expiry
    local low, high, found = 0, h.limit - 1, nil
    while low <= high do
        local mid = math.floor((low + high) / 2)
        local val = tonumber(redis.call('lindex', h.keys[1], mid))
        if val and val >= target then
            found = mid
            low = mid + 1
        else
            high = mid - 1
        end
    end
    if found then
        return redis.call('lindex', h.keys[1], found), found + 1
    end
    return tostring(now), 0
end

local admitted = true
for i = 1, n do
    if not admits(hits[i]) then
        admitted = false
    end
end

local out = {admitted and 1 or 0}
for i = 1, n do
    local h = hits[i]
    local a, b, c, d = 0, 0, 0, 0
    if h.kind == 'count' or (h.kind == 'count_refused' and not admitted) then
        a = incr_expire(h.keys[1], h.expiry, h.cost)
    elseif admitted and h.kind ~= 'count_refused' then
        spend(h)
    end
    if h.kind == 'sliding' then
        a, b, c, d = sliding_window(h)
    elseif h.kind == 'fixed' then
        a = tonumber(redis.call('get', h.keys[1])) or 0
        b = tonumber(redis.call('pttl', h.keys[1]))
    elseif h.kind == 'moving' then
        a, b = moving_window(h)
    end
    out[#out + 1] = a
    out[#out + 1] = b
    out[#out + 1] = c
    out[#out + 1] = d
end
return out
