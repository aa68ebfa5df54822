//! The Lua scripts of the Redis store: `gcra.rs` and the budget arithmetic, step for step, so a
//! bucket shared by replicas behaves exactly like one in memory.
//!
//! Lua numbers are doubles. Every value here stays below 2^53 (see the bounds in `gcra.rs` and
//! `budget.rs`; Rust clamps cost and delta arguments before sending them), so all arithmetic is
//! exact. Numbers are written back with `%.0f`: Redis would otherwise convert them with `%.14g`
//! and round anything above 10^14.

use super::budget::MAX_SPEND;
use super::gcra::DEBT_PERIODS;

/// How long a limit's key outlives the moment its bucket is full again. Expiry runs on the
/// Redis clock, levels on the replicas' clocks; the margin absorbs the skew between them, so a
/// key never vanishes while some replica still sees debt.
pub const EXPIRY_MARGIN_MS: u64 = 1000;

/// Shared by the rate scripts. Per limit `i` (`KEYS[i]`), ARGV holds six numbers from index
/// `6 × (i − 1) + 1`: now_tick, per_tick, per_token, capacity, tick_us, tokens (a cost or a
/// delta). A stored level is `"<used>:<at>"`.
const RATE_COMMON: &str = r"
local function arg(i, k)
  return tonumber(ARGV[6 * (i - 1) + k])
end

-- ceil(n / d) for integers: the division of doubles may round, so step to the exact quotient.
local function ceil_div(n, d)
  local q = math.floor(n / d)
  if q * d > n then
    q = q - 1
  elseif (q + 1) * d <= n then
    q = q + 1
  end
  if q * d < n then
    q = q + 1
  end
  return q
end

-- The level of KEYS[i] refilled to now (gcra::refill), or nil if the stored value is unreadable.
local function load(i)
  local now_tick, per_tick = arg(i, 1), arg(i, 2)
  local raw = redis.call('GET', KEYS[i])
  if not raw then
    return 0, now_tick
  end
  local used, at = string.match(raw, '^(%d+):(%d+)$')
  if not used then
    return nil
  end
  used, at = tonumber(used), tonumber(at)
  if used > MAX_BUCKETS * arg(i, 4) then
    return nil
  end
  if now_tick > at then
    -- A product above 2^53 is rounded but stays above 2^53 > used: full either way.
    local drained = (now_tick - at) * per_tick
    if drained >= used then
      used = 0
    else
      used = used - drained
    end
    at = now_tick
  end
  return used, at
end

-- Write a level back; a full bucket needs no key. The key expires when the bucket is full
-- again (gcra::full_at_us, counted from now) plus a margin.
local function store(i, used, at)
  if used == 0 then
    redis.call('DEL', KEYS[i])
    return
  end
  local ticks = at - arg(i, 1) + ceil_div(used, arg(i, 2))
  local ttl = ceil_div(ticks * arg(i, 5), 1000) + MARGIN_MS
  redis.call('SET', KEYS[i], string.format('%.0f:%.0f', used, at), 'PX', string.format('%.0f', ttl))
end

-- Every level refilled, or a corruption reply naming the first bad key.
local function load_all()
  local used, at = {}, {}
  for i = 1, #KEYS do
    local u, t = load(i)
    if not u then
      return nil, {-1, i}
    end
    used[i], at[i] = u, t
  end
  return used, at
end

local function reply(status, used)
  local out = {status}
  for i = 1, #KEYS do
    out[i + 1] = used[i]
  end
  return out
end
";

/// gcra::admit: the cost fits every limit, and is then taken from all, or nothing changes.
/// Replies {1 admitted | 0 refused, used...}.
const RESERVE: &str = r"
local used, at = load_all()
if not used then
  return at
end
local fits = 1
for i = 1, #KEYS do
  if used[i] + arg(i, 6) * arg(i, 3) > arg(i, 4) then
    fits = 0
  end
end
if fits == 1 then
  for i = 1, #KEYS do
    used[i] = used[i] + arg(i, 6) * arg(i, 3)
    store(i, used[i], at[i])
  end
end
return reply(fits, used)
";

/// gcra::settle: add the (bounded) delta to every limit, clamped to 0 ..= max_used.
/// Replies {1, used...}.
const SETTLE: &str = r"
local used, at = load_all()
if not used then
  return at
end
for i = 1, #KEYS do
  local u = used[i] + arg(i, 6) * arg(i, 3)
  local max = MAX_BUCKETS * arg(i, 4)
  if u < 0 then
    u = 0
  elseif u > max then
    u = max
  end
  used[i] = u
  store(i, u, at[i])
end
return reply(1, used)
";

/// Levels refilled to now, nothing written. Replies {1, used...}.
const STATE: &str = r"
local used, at = load_all()
if not used then
  return at
end
return reply(1, used)
";

/// Shared by the budget scripts: `KEYS[1]` is one window's counter.
const BUDGET_COMMON: &str = r"
local function spent()
  local raw = redis.call('GET', KEYS[1])
  if not raw then
    return 0
  end
  if not string.match(raw, '^%d+$') then
    return nil
  end
  local value = tonumber(raw)
  if value > MAX_SPEND then
    return nil
  end
  return value
end
";

/// ARGV: amount, limit, expiry (ms since the epoch). Adds the amount if it fits under the
/// limit. Replies {1 admitted | 0 refused | -1 corrupt, spent}.
const BUDGET_RESERVE: &str = r"
local current = spent()
if not current then
  return {-1, 0}
end
local amount = tonumber(ARGV[1])
if current + amount > tonumber(ARGV[2]) then
  return {0, current}
end
current = current + amount
if amount > 0 then
  redis.call('SET', KEYS[1], string.format('%.0f', current), 'PXAT', ARGV[3])
end
return {1, current}
";

/// ARGV: delta (bounded), expiry (ms since the epoch). Replies {1 | -1 corrupt, spent}.
const BUDGET_SETTLE: &str = r"
local current = spent()
if not current then
  return {-1, 0}
end
current = current + tonumber(ARGV[1])
if current < 0 then
  current = 0
elseif current > MAX_SPEND then
  current = MAX_SPEND
end
if current == 0 then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], string.format('%.0f', current), 'PXAT', ARGV[2])
end
return {1, current}
";

fn rate(body: &str) -> String {
    format!(
        "local MAX_BUCKETS = {}\nlocal MARGIN_MS = {EXPIRY_MARGIN_MS}\n{RATE_COMMON}{body}",
        DEBT_PERIODS + 1
    )
}

fn budget(body: &str) -> String {
    format!("local MAX_SPEND = {MAX_SPEND}\n{BUDGET_COMMON}{body}")
}

pub(crate) fn reserve() -> String {
    rate(RESERVE)
}

pub(crate) fn settle() -> String {
    rate(SETTLE)
}

pub(crate) fn state() -> String {
    rate(STATE)
}

pub(crate) fn budget_reserve() -> String {
    budget(BUDGET_RESERVE)
}

pub(crate) fn budget_settle() -> String {
    budget(BUDGET_SETTLE)
}
