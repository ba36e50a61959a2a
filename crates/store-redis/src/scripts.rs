//! The Lua scripts: each store step that must read and write atomically runs as one script
//! inside Redis, so no other client's command can fall between its read and its write.
//!
//! The record key holds a hash of `version` and `value` (the sealed [`helloflex_auth::Record`]);
//! the epoch key a hash of `run` (the server's run id and replication id when the SDK first saw
//! this data), `since` (then, in the server's milliseconds) and `held` (set while a record
//! exists, so that its disappearance is seen). A restart (with or without persistence, or from an older snapshot),
//! a failover (a promotion changes the replication id, also on a failover and back) or a wipe
//! shows as another `run`, or no epoch at all; a record gone while the epoch says one was
//! written (evicted, expired, `DEL`, [`crate::RedisStore::delete`]) is a loss too; and a
//! `since` ahead of the server's clock means the clock stepped back. Each starts a new epoch,
//! whose age tells the SDK how long live instances have had to write back what the data may
//! have lost.
//!
//! Versions are compared as decimal strings (by length, then digits): Lua numbers are doubles,
//! exact only below 2^53.

use redis::Script;

/// The epoch's age in milliseconds, as `age`; a new epoch is recorded when the stored one is
/// another server's (or missing), when the record it saw written is gone, or when the
/// server's clock is behind it. `KEYS[2]` is the epoch key.
const EPOCH: &str = r"
local run = (string.match(redis.call('INFO', 'server'), 'run_id:(%x+)') or '?') .. '/' ..
  (string.match(redis.call('INFO', 'replication'), 'master_replid:(%x+)') or '?')
local function above(a, b)
  if #a ~= #b then return #a > #b end
  return a > b
end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local seen = redis.call('HMGET', KEYS[2], 'run', 'since', 'held')
local since = tonumber(seen[2])
local exists = redis.call('EXISTS', KEYS[1]) == 1
if seen[1] ~= run or not since or since > now or (seen[3] and not exists) then
  since = now
  redis.call('HSET', KEYS[2], 'run', run, 'since', since)
end
if exists and not seen[3] then
  redis.call('HSET', KEYS[2], 'held', '1')
elseif seen[3] and not exists then
  redis.call('HDEL', KEYS[2], 'held')
end
local age = now - since
";

/// `KEYS`: record, epoch. Returns `{version or false, value or false, epoch age in ms}`.
const LOAD: &str = r"
local record = redis.call('HMGET', KEYS[1], 'version', 'value')
return {record[1], record[2], age}
";

/// `KEYS`: record, epoch. `ARGV`: expected version, new version, value. Writes if the stored
/// version is still the expected one and the new one is higher; returns
/// `{version written or 0 when refused, epoch age in ms}`.
const SWAP: &str = r"
local version = redis.call('HGET', KEYS[1], 'version') or '0'
if version ~= ARGV[1] or not above(ARGV[2], version) then
  return {'0', age}
end
redis.call('HSET', KEYS[1], 'version', ARGV[2], 'value', ARGV[3])
redis.call('HSET', KEYS[2], 'held', '1')
return {ARGV[2], age}
";

/// The scripts, hashed once (Redis runs them by hash and is sent the source only if it has
/// not seen it, for example after a restart).
#[derive(Debug)]
pub(crate) struct Scripts {
    pub(crate) load: Script,
    pub(crate) swap: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Self {
            load: Script::new(&format!("{EPOCH}{LOAD}")),
            swap: Script::new(&format!("{EPOCH}{SWAP}")),
        }
    }
}
