//! Entropy: the one place that draws random bytes (for `state`, PKCE and jitter).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use helloflex_core::machines::AUTHORIZATION_ENTROPY_BYTES;
use helloflex_core::{ConfigError, Error};

/// Random bytes from the operating system.
pub fn os_bytes<const N: usize>() -> Result<[u8; N], Error> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes)
        .map_err(|_| ConfigError::Invalid { name: "entropy", reason: "the OS RNG failed" })?;
    Ok(bytes)
}

/// Bytes to start one authorization.
pub fn authorization_entropy() -> Result<[u8; AUTHORIZATION_ENTROPY_BYTES], Error> {
    os_bytes()
}

/// A seed for jitter, cheap enough for every call: one OS-random base per process (drawn once),
/// mixed with a counter (SplitMix64's increment). Jitter only spreads load; it is not a secret,
/// so if the OS RNG fails a fixed base will do.
pub fn jitter_seed() -> u64 {
    static BASE: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let base = *BASE
        .get_or_init(|| os_bytes::<8>().map(u64::from_le_bytes).unwrap_or(0x5DEE_CE66_D1CE_4E5B));
    base ^ COUNTER.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
}
