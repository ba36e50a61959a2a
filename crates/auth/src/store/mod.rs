//! Token stores: where user tokens (authorization-code grant) live between calls and processes.
//!
//! A store keeps one [`Record`] per grant and knows two calls: [`TokenStore::load`] and a
//! compare-and-swap on the record's version, [`TokenStore::swap`]. Everything a fleet agrees on
//! lives inside the record (the tokens, who is spending the refresh token now, the tombstone of
//! a refused one, the authorizations already completed), so every store, whatever it is built
//! on, gives the same guarantees with the same two calls; the fill job (`fill/`) holds the
//! protocol.
//!
//! The folder holds, a file each: the seam (`seam.rs`: the trait and what it reads and writes),
//! the two built-in stores (`memory.rs`, `file.rs` with its locking), the encryption every store
//! that writes outside the process uses (`encryption.rs`), and the identity of a record in a
//! shared store (`scope.rs`). The crate root re-exports what a user names.

mod encryption;
mod file;
mod memory;
mod scope;
mod seam;

pub use encryption::{Key, KeyError, KeyRing};
pub use file::FileStore;
pub use memory::MemoryStore;
pub use scope::{RecordScope, RecordSealing};
pub use seam::{Claim, Loaded, Record, StoredTokens, Swap, TokenStore};
