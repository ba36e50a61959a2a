//! Entropy: the one place that draws random bytes (for `state`, PKCE and jitter).

use helloflex_core::{AUTHORIZATION_ENTROPY_BYTES, ConfigError, Error};

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

/// A seed for jitter. Jitter only spreads load, so if the OS RNG fails a fixed seed will do.
pub fn jitter_seed() -> u64 {
    os_bytes::<8>().map(u64::from_le_bytes).unwrap_or(0x5DEE_CE66_D1CE_4E5B)
}
