//! A store that hands every call on to an inner store, through [`StoreHooks`]: a test store
//! that injects a fault (a slow write, a stale read, a crash mid-rotation) implements only the
//! hook it changes and gets the rest handed on unchanged.

use helloflex_auth::{Loaded, MemoryStore, Record, StoreError, Swap, TokenStore};

/// What a test store changes about the store it wraps. Each hook is handed the inner store and
/// by default hands the call on to it unchanged.
pub trait StoreHooks: std::fmt::Debug + Send + Sync {
    /// [`TokenStore::load`], given the inner store.
    fn load(&self, inner: &dyn TokenStore) -> Result<Loaded, StoreError> {
        inner.load()
    }

    /// [`TokenStore::swap`], given the call (the inner store and the arguments).
    fn swap(&self, call: SwapCall<'_>) -> Result<Swap, StoreError> {
        call.pass()
    }
}

/// One [`TokenStore::swap`] call on its way to the inner store: a hook reads it, and hands it
/// on with [`SwapCall::pass`] (or does not).
#[derive(Clone, Copy)]
pub struct SwapCall<'a> {
    /// The store the call is handed on to.
    pub inner: &'a dyn TokenStore,
    /// The version the caller expects to replace.
    pub expected: u64,
    /// The record it writes.
    pub new: &'a Record,
}

impl SwapCall<'_> {
    /// Hands the call on to the inner store unchanged.
    pub fn pass(self) -> Result<Swap, StoreError> {
        self.inner.swap(self.expected, self.new)
    }
}

/// A [`TokenStore`] that hands every call to `hooks` with `inner` (a [`MemoryStore`] unless
/// told otherwise).
#[derive(Debug, Default)]
pub struct Passthrough<H, S = MemoryStore> {
    /// The store the calls are handed on to (a test may read or write it behind the hooks).
    pub inner: S,
    /// What this store changes, and the state a test watches or steers.
    pub hooks: H,
}

impl<H, S> Passthrough<H, S> {
    /// `hooks` over `inner`.
    pub fn new(inner: S, hooks: H) -> Self {
        Self { inner, hooks }
    }
}

impl<H: StoreHooks, S: TokenStore> TokenStore for Passthrough<H, S> {
    fn load(&self) -> Result<Loaded, StoreError> {
        self.hooks.load(&self.inner)
    }

    fn swap(&self, expected: u64, new: &Record) -> Result<Swap, StoreError> {
        self.hooks.swap(SwapCall { inner: &self.inner, expected, new })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default)]
    struct Unchanged;
    impl StoreHooks for Unchanged {}

    /// Hooks that change nothing make the wrapper the store it wraps.
    #[test]
    fn default_hooks_hand_every_call_on() {
        let store = Passthrough::<Unchanged>::default();
        assert!(store.load().unwrap().record.is_none());
        let mut record = Record::default();
        record.version = 1;
        assert!(matches!(store.swap(0, &record).unwrap(), Swap::Stored { version: 1, .. }));
        assert_eq!(store.inner.load().unwrap().record.unwrap().version, 1);
    }
}
