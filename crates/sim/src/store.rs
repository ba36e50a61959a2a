//! The shared store the simulated fleet uses, with the faults a real one has: a call that
//! fails before it is applied, one applied whose answer is lost, the whole store down for a
//! while, a restart with or without persistence, a rollback to the state before the last
//! write. Each user's records sit under their own key, as in Redis.
//!
//! It has the semantics every store of the SDK promises (a versioned record, compare-and-swap,
//! a lease with a growing fence and an expiry on the store's own clock); the world decides,
//! call by call, which fault (if any) the next call meets.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use helloflex_auth::{
    Clock, Lease, LeaseAttempt, ManualClock, Record, StoreError, StoredTokens, Swap, TokenStore,
};

/// What the next store call meets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallFault {
    /// Applied, answered.
    None,
    /// Not applied: the connection failed first (or the store is down).
    Before,
    /// Applied, but the answer is lost (a timeout after the write).
    After,
}

/// One record and its lease, as a Redis hash and its lease keys hold them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Slot {
    pub(crate) record: Option<Record>,
    fence: u64,
    lease_until: Option<(u64, SystemTime)>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Data {
    pub(crate) slots: BTreeMap<String, Slot>,
}

#[derive(Debug, Default)]
pub(crate) struct Inner {
    pub(crate) data: Data,
    /// The data after each write, oldest first (for a rollback).
    snapshots: Vec<Data>,
    fault: Option<CallFault>,
    pub(crate) down: bool,
    /// Every refresh token written, in order (the invariants read it).
    pub(crate) written: Vec<String>,
    /// The refresh tokens the last call returned (its caller now knows them).
    pub(crate) last_read: Vec<String>,
    /// What the last call was and how it ended, for the trace.
    pub(crate) last_call: String,
}

/// The store every instance shares.
#[derive(Debug, Clone)]
pub struct SimStore {
    inner: Arc<Mutex<Inner>>,
    clock: Arc<ManualClock>,
}

impl SimStore {
    pub(crate) fn new(clock: Arc<ManualClock>) -> Self {
        Self { inner: Arc::default(), clock }
    }

    pub(crate) fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The handle one user's manager uses.
    pub(crate) fn for_key(&self, key: &str) -> UserStore {
        UserStore { store: self.clone(), key: key.to_owned() }
    }

    /// Sets what the next call meets.
    pub(crate) fn arm(&self, fault: CallFault) {
        self.inner().fault = Some(fault);
    }

    /// Writes `record` under `key` directly (the first sign-in, done before the run).
    pub(crate) fn seed(&self, key: &str, record: Record) {
        let mut inner = self.inner();
        if let Some(rt) = &record.tokens.refresh_token {
            inner.written.push(rt.expose_secret().to_owned());
        }
        inner.data.slots.entry(key.to_owned()).or_default().record = Some(record);
        let snapshot = inner.data.clone();
        inner.snapshots.push(snapshot);
    }

    /// A restart: with persistence everything stays (leases keep their expiry on the store's
    /// clock); without, everything is gone, fence counters included.
    pub(crate) fn restart(&self, persist: bool) {
        let mut inner = self.inner();
        if !persist {
            inner.data = Data::default();
        }
    }

    /// A restart from the snapshot taken before the last write.
    pub(crate) fn roll_back(&self) {
        let mut inner = self.inner();
        let len = inner.snapshots.len();
        let older = if len >= 2 { inner.snapshots[len - 2].clone() } else { Data::default() };
        inner.data = older;
    }

    fn call<T: std::any::Any>(
        &self,
        op: &'static str,
        apply: impl FnOnce(&mut Inner, SystemTime) -> T,
    ) -> Result<T, StoreError> {
        let wall = self.clock.wall();
        let mut inner = self.inner();
        inner.last_read.clear();
        let fault = if inner.down {
            CallFault::Before
        } else {
            inner.fault.take().unwrap_or(CallFault::None)
        };
        if fault == CallFault::Before {
            inner.last_call = format!("{op}: failed, not applied");
            return Err(StoreError::Remote { op, reason: "connection refused".into() });
        }
        let value = apply(&mut inner, wall);
        let said = describe(&value);
        inner.last_call = format!("{op}: {said}");
        if fault == CallFault::After {
            inner.last_call = format!("{op}: applied ({said}), answer lost");
            inner.last_read.clear();
            return Err(StoreError::Remote { op, reason: "timed out".into() });
        }
        Ok(value)
    }
}

/// One user's record in the shared store: what a manager is handed.
#[derive(Debug, Clone)]
pub struct UserStore {
    store: SimStore,
    key: String,
}

impl TokenStore for UserStore {
    fn load(&self) -> Result<Option<Record>, StoreError> {
        self.store.call("read", |inner, _| {
            let record = inner.data.slots.get(&self.key).and_then(|s| s.record.clone());
            inner.last_read = record
                .iter()
                .filter_map(|r| r.tokens.refresh_token.as_ref())
                .map(|t| t.expose_secret().to_owned())
                .collect();
            record
        })
    }

    fn swap(
        &self,
        expected: u64,
        new: &StoredTokens,
        lease: Option<&Lease>,
    ) -> Result<Swap, StoreError> {
        self.store.call("write", |inner, _| {
            let slot = inner.data.slots.entry(self.key.clone()).or_default();
            let current = slot.record.as_ref().map_or(0, |r| r.version);
            if current != expected {
                return Swap::Conflict;
            }
            if let Some(lease) = lease
                && lease.fence != 0
                && lease.fence != slot.fence
            {
                return Swap::Conflict;
            }
            let version = current + 1;
            slot.record = Some(Record::new(new.clone(), version));
            if let Some(rt) = &new.refresh_token {
                inner.written.push(rt.expose_secret().to_owned());
            }
            let snapshot = inner.data.clone();
            inner.snapshots.push(snapshot);
            Swap::Stored { version }
        })
    }

    fn lease(&self, ttl: Duration) -> Result<LeaseAttempt, StoreError> {
        self.store.call("lease", |inner, now| {
            let slot = inner.data.slots.entry(self.key.clone()).or_default();
            if let Some((_, until)) = slot.lease_until
                && now < until
            {
                let left = until.duration_since(now).unwrap_or_default();
                return LeaseAttempt::Busy { retry_in: left.min(Duration::from_millis(250)) };
            }
            slot.fence += 1;
            let until = now.checked_add(ttl).unwrap_or(now);
            slot.lease_until = Some((slot.fence, until));
            LeaseAttempt::Acquired(Lease::new(slot.fence, until))
        })
    }

    fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        self.store.call("release", |inner, _| {
            if let Some(slot) = inner.data.slots.get_mut(&self.key)
                && slot.lease_until.is_some_and(|(fence, _)| fence == lease.fence)
            {
                slot.lease_until = None;
            }
        })
    }
}

/// A store answer in a few words, tokens by name (the simulation's tokens are not secrets).
fn describe(value: &dyn std::any::Any) -> String {
    let record = |r: &Record| {
        let rt = r.tokens.refresh_token.as_ref().map_or("-", |t| t.expose_secret());
        format!("v{} {rt}{}", r.version, if r.tokens.refused { " (refused)" } else { "" })
    };
    if let Some(loaded) = value.downcast_ref::<Option<Record>>() {
        return loaded.as_ref().map_or("nothing stored".into(), record);
    }
    if let Some(swap) = value.downcast_ref::<Swap>() {
        return match swap {
            Swap::Stored { version } => format!("stored v{version}"),
            _ => "conflict".into(),
        };
    }
    if let Some(attempt) = value.downcast_ref::<LeaseAttempt>() {
        return match attempt {
            LeaseAttempt::Acquired(lease) => format!("acquired, fence {}", lease.fence),
            _ => "busy".into(),
        };
    }
    "done".into()
}
