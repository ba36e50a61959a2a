//! The Lua scripts: each store step that must read and write atomically runs as one script
//! inside Redis, so no other client's command can fall between its read and its write.
//!
//! The lease key holds `"<fence> <holder>"`; the fence key the highest fence granted; the
//! record key a hash of `version` and `value` (the sealed token set).

use redis::Script;

/// `KEYS`: lease, fence. `ARGV`: holder, lease time in ms.
/// Returns `{1, fence}` when granted, `{0, ms left}` when another holder has it.
const LEASE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {0, redis.call('PTTL', KEYS[1])}
end
local fence = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], fence .. ' ' .. ARGV[1], 'NX', 'PX', ARGV[2])
return {1, fence}
";

/// `KEYS`: lease. `ARGV`: fence, lease time in ms. Extends the lease if it is still this
/// fence's; returns 1 if it was.
const RENEW: &str = r"
local held = redis.call('GET', KEYS[1])
if held and string.sub(held, 1, #ARGV[1] + 1) == ARGV[1] .. ' ' then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
";

/// `KEYS`: lease. `ARGV`: fence. Deletes the lease if it is still this fence's.
const RELEASE: &str = r"
local held = redis.call('GET', KEYS[1])
if held and string.sub(held, 1, #ARGV[1] + 1) == ARGV[1] .. ' ' then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// `KEYS`: record, fence. `ARGV`: expected version, value, lease fence (`0`: no lease).
/// Writes if the version is still the expected one and no lease was granted after the given
/// one (fencing); returns the new version, or 0 when refused.
const SWAP: &str = r"
local version = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if version ~= tonumber(ARGV[1]) then
  return 0
end
if ARGV[3] ~= '0' and redis.call('GET', KEYS[2]) ~= ARGV[3] then
  return 0
end
redis.call('HSET', KEYS[1], 'version', version + 1, 'value', ARGV[2])
return version + 1
";

/// The scripts, hashed once (Redis runs them by hash and is sent the source only if it has
/// not seen it, for example after a restart).
#[derive(Debug)]
pub(crate) struct Scripts {
    pub(crate) lease: Script,
    pub(crate) renew: Script,
    pub(crate) release: Script,
    pub(crate) swap: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Self {
            lease: Script::new(LEASE),
            renew: Script::new(RENEW),
            release: Script::new(RELEASE),
            swap: Script::new(SWAP),
        }
    }
}
