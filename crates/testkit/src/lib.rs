//! `helloflex-testkit`: the fixtures the workspace's tests (and the benchmark) share, in one
//! internal crate instead of files included by `#[path]`:
//!
//! - [`redis_server`]: a real `redis-server` on a free loopback port in a directory of its own,
//!   and what operations do to one (restarts, wipes, rollbacks, failovers, pauses);
//! - [`pg_server`]: a real PostgreSQL server made with `initdb` in a temporary directory, on a
//!   free loopback port, and what operations do to one (restarts, crashes, rollbacks, pauses);
//! - [`passthrough`]: a store that hands every call on to an inner store, through hooks that
//!   a fault-injecting test store overrides for only the call it changes;
//! - [`watchdog`]: aborts a test whose failure would be a hang;
//! - [`tls`]: a private CA and a certificate for `127.0.0.1`, for servers over TLS;
//! - [`contract`]: the store contract, written once and run by every store's tests, and the
//!   fixtures they share.
//!
//! Test code: a fixture that cannot do its job panics with a hint, which fails the test that
//! asked for it.

pub mod contract;
pub mod passthrough;
pub mod pg_server;
pub mod redis_server;
pub mod tls;
pub mod watchdog;

pub use passthrough::{Passthrough, StoreHooks, SwapCall};
pub use pg_server::PgServer;
pub use redis_server::{Persistence, RedisServer, Reply, free_port};
pub use watchdog::Watchdog;

/// Parts of a record scope (client, user, namespace) that could forge another scope's key if a
/// part were not encoded: the separators (`:`, `/`), the hash tag's braces, the escape
/// character, what percent-encoding produces, spaces, control characters, unicode, the empty
/// string and the default namespace. The scope's unit tests and the Redis store's property
/// test draw from it.
pub const TRICKY_SCOPE_PARTS: &[&str] = &[
    "",
    "a",
    "b",
    "a/b",
    "a/",
    "/b",
    "/",
    "a:b",
    ":",
    "a:",
    "{a}",
    "{",
    "}",
    "a}",
    "}:",
    "%",
    "%2F",
    "a%2Fb",
    "%3A",
    "a b",
    " ",
    "ü",
    "日本",
    "a\0b",
    "a\nb",
    "helloflex",
    "tokens",
];
