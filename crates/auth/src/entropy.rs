//! Entropy: the one place that draws random bytes (for `state`, PKCE and jitter), and the
//! [`Entropy`] edge a manager is handed (the OS by default; a seeded source in simulations).

use std::cell::Cell;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use helloflex_core::{ConfigError, Error};

/// Random bytes from the operating system: a key, or the bytes that start an authorization
/// driven by hand (a manager draws its own from its [`Entropy`]).
///
/// ```
/// use helloflex_core::machines::start_authorization;
/// use helloflex_core::{AuthorizationCodeConfig, ClientIdentity, Endpoint, InsecureLoopback::Deny};
///
/// let key: [u8; 32] = helloflex_auth::os_bytes()?;
/// assert_ne!(key, [0; 32]);
///
/// let config = AuthorizationCodeConfig::builder(ClientIdentity::public("my-cli"))
///     .authorize_url(Endpoint::parse("https://login.flextell.example/authorize", Deny)?)
///     .token_url(Endpoint::parse("https://login.flextell.example/token", Deny)?)
///     .redirect_uri(Endpoint::parse("https://my-app.example/callback", Deny)?)
///     .build()?;
/// // `AUTHORIZATION_ENTROPY_BYTES` of them, the length inferred from `start_authorization`.
/// let (url, _pending) = start_authorization(&config, &helloflex_auth::os_bytes()?)?;
/// assert!(url.contains("&state=") && url.contains("&code_challenge="));
/// # Ok::<(), helloflex_core::Error>(())
/// ```
pub fn os_bytes<const N: usize>() -> Result<[u8; N], Error> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes)
        .map_err(|_| ConfigError::Invalid { name: "entropy", reason: "the OS RNG failed" })?;
    Ok(bytes)
}

/// A seed for jitter, cheap enough for every call: a counter (SplitMix64's increment) per
/// thread, so calls on different threads write to no shared cache line, each thread's started
/// apart from the others' from one OS-random base per process (drawn once). Jitter only
/// spreads load; it is not a secret, so if the OS RNG fails a fixed base will do. Users reach
/// it as [`OsEntropy`]'s [`Entropy::jitter_seed`].
pub(crate) fn jitter_seed() -> u64 {
    const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;
    static BASE: OnceLock<u64> = OnceLock::new();
    static THREADS: AtomicU64 = AtomicU64::new(0);
    thread_local! {
        static NEXT: Cell<Option<u64>> = const { Cell::new(None) };
    }
    NEXT.with(|next| {
        let seed = next.get().unwrap_or_else(|| {
            let base = *BASE.get_or_init(|| {
                os_bytes::<8>().map(u64::from_le_bytes).unwrap_or(0x5DEE_CE66_D1CE_4E5B)
            });
            // Threads start 2^40 steps apart: no two meet within a process's life.
            let thread = THREADS.fetch_add(1, Ordering::Relaxed);
            base.wrapping_add(thread.wrapping_mul(GAMMA).wrapping_shl(40))
        });
        next.set(Some(seed.wrapping_add(GAMMA)));
        seed
    })
}

/// Where a token manager's random numbers come from: jitter seeds (load spreading, not
/// secret) and the bytes that start an authorization (`state` and the PKCE verifier, secret).
/// [`OsEntropy`] by default; a deterministic source makes a whole fleet replayable in a
/// simulation, as [`crate::ManualClock`] does for time.
///
/// ```
/// use helloflex_core::Error;
/// use helloflex_auth::Entropy;
///
/// /// A replayable source for a simulation (never in production: `state` and PKCE need secrecy).
/// #[derive(Debug)]
/// struct Seeded(u8);
///
/// impl Entropy for Seeded {
///     fn jitter_seed(&self) -> u64 {
///         u64::from(self.0)
///     }
///
///     fn fill(&self, bytes: &mut [u8]) -> Result<(), Error> {
///         for (i, b) in bytes.iter_mut().enumerate() {
///             *b = self.0.wrapping_add((i * 37) as u8);
///         }
///         Ok(())
///     }
/// }
///
/// let mut bytes = [0u8; 4];
/// Seeded(1).fill(&mut bytes)?;
/// assert_eq!(bytes, [1, 38, 75, 112]);
/// # Ok::<(), Error>(())
/// ```
pub trait Entropy: Send + Sync + std::fmt::Debug {
    /// A seed for jitter (retry backoff, refresh timing).
    fn jitter_seed(&self) -> u64;
    /// Fills `bytes` with secret random bytes.
    fn fill(&self, bytes: &mut [u8]) -> Result<(), Error>;
}

/// The operating system's entropy: [`os_bytes`], and jitter seeds from a per-thread counter
/// started from one OS-random base (cheap enough for every call).
///
/// ```
/// use helloflex_auth::{Entropy, OsEntropy};
///
/// let mut state = [0u8; 32];
/// OsEntropy.fill(&mut state)?;
/// assert_ne!(state, [0; 32]);
/// # Ok::<(), helloflex_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct OsEntropy;

impl Entropy for OsEntropy {
    fn jitter_seed(&self) -> u64 {
        jitter_seed()
    }
    fn fill(&self, bytes: &mut [u8]) -> Result<(), Error> {
        getrandom::fill(bytes).map_err(|_| {
            ConfigError::Invalid { name: "entropy", reason: "the OS RNG failed" }.into()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::jitter_seed;

    #[test]
    fn seeds_differ_within_and_across_threads() {
        let mut seen: Vec<u64> = (0..64).map(|_| jitter_seed()).collect();
        let others: Vec<u64> = std::thread::spawn(|| (0..64).map(|_| jitter_seed()).collect())
            .join()
            .unwrap_or_default();
        assert_eq!(others.len(), 64);
        seen.extend(others);
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 128);
    }
}
