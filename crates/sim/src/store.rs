//! The shared store the simulated fleet uses, with the faults a real one has: a call that
//! fails before it is applied, one applied whose answer is lost, the whole store down for a
//! while, a restart with or without persistence, a rollback to the state before the last
//! write. Each user's records sit under their own key, as in Redis.
//!
//! It has the semantics every store of the SDK promises (a versioned record and
//! compare-and-swap on it, and the age of its data lineage: a restart, a wipe or a rollback
//! starts a new one, as Redis's run id tells); the world decides, call by call, which fault
//! (if any) the next call meets.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use helloflex_auth::{
    Clock, Loaded, ManualClock, Record, StoreError, StoreErrorKind, Swap, TokenStore,
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

/// One user's record, and its epoch as Redis keeps it beside the record.
#[derive(Debug, Clone, Default)]
pub(crate) struct Slot {
    pub(crate) record: Option<Record>,
    /// When this record's epoch began, if later than the store's (the record lost alone, or
    /// the store's clock stepped back).
    since: Option<Instant>,
    /// Whether a record was there at the last call (so that its disappearance is seen).
    held: bool,
}

impl Slot {
    /// The epoch's age at `now`, as the Redis scripts compute it: a record gone since the last
    /// call (evicted, deleted) or an epoch that began after `now` (the store's clock stepped
    /// back) starts a new one.
    fn epoch_age(&mut self, store_epoch: Instant, now: Instant) -> Duration {
        let exists = self.record.is_some();
        if self.since.is_some_and(|since| since > now) || (self.held && !exists) {
            self.since = Some(now);
        }
        self.held = exists;
        let since = self.since.map_or(store_epoch, |since| since.max(store_epoch));
        now.saturating_duration_since(since)
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Data {
    pub(crate) slots: BTreeMap<String, Slot>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) data: Data,
    /// When the current data lineage began (the last restart, wipe or rollback).
    epoch: Instant,
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
        // A store that has been up for a day when the run starts.
        let epoch = clock.now().checked_sub(Duration::from_secs(86_400)).unwrap_or(clock.now());
        let inner = Inner {
            data: Data::default(),
            epoch,
            snapshots: Vec::new(),
            fault: None,
            down: false,
            written: Vec::new(),
            last_read: Vec::new(),
            last_call: String::new(),
        };
        Self { inner: Arc::new(Mutex::new(inner)), clock }
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
        if let Some(rt) = record.tokens.as_ref().and_then(|t| t.refresh_token.as_ref()) {
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
        inner.epoch = self.clock.now();
    }

    /// The records vanish while the store stays up, its epoch unchanged (an eviction, an
    /// operator's `DEL`, a key that expired, `RedisStore::delete`).
    pub(crate) fn evict(&self) {
        let mut inner = self.inner();
        for slot in inner.data.slots.values_mut() {
            slot.record = None;
        }
        let snapshot = inner.data.clone();
        inner.snapshots.push(snapshot);
    }

    /// The store's clock steps back by `by` (an NTP step, a VM restored): every epoch now
    /// began `by` after the store's present.
    pub(crate) fn clock_back(&self, by: Duration) {
        let now = self.clock.now();
        let ahead = now.checked_add(by).unwrap_or(now);
        let mut inner = self.inner();
        for slot in inner.data.slots.values_mut() {
            slot.since = Some(ahead);
        }
    }

    /// The store's clock steps forward by `by`: every epoch looks `by` older.
    pub(crate) fn clock_forward(&self, by: Duration) {
        let mut inner = self.inner();
        inner.epoch = inner.epoch.checked_sub(by).unwrap_or(inner.epoch);
        for slot in inner.data.slots.values_mut() {
            slot.since = slot.since.map(|since| since.checked_sub(by).unwrap_or(since));
        }
    }

    /// A restart from the snapshot taken before the last write.
    pub(crate) fn roll_back(&self) {
        let mut inner = self.inner();
        let len = inner.snapshots.len();
        let older = if len >= 2 { inner.snapshots[len - 2].clone() } else { Data::default() };
        inner.data = older;
        inner.epoch = self.clock.now();
    }

    fn call<T: std::any::Any>(
        &self,
        op: &'static str,
        apply: impl FnOnce(&mut Inner, Instant) -> T,
    ) -> Result<T, StoreError> {
        let wall = self.clock.now();
        let mut inner = self.inner();
        inner.last_read.clear();
        let fault = if inner.down {
            CallFault::Before
        } else {
            inner.fault.take().unwrap_or(CallFault::None)
        };
        if fault == CallFault::Before {
            inner.last_call = format!("{op}: failed, not applied");
            return Err(StoreError::new(op, StoreErrorKind::Unreachable, "connection refused"));
        }
        let value = apply(&mut inner, wall);
        let said = describe(&value);
        inner.last_call = format!("{op}: {said}");
        if fault == CallFault::After {
            inner.last_call = format!("{op}: applied ({said}), answer lost");
            inner.last_read.clear();
            return Err(StoreError::new(op, StoreErrorKind::TimedOut, "the answer was lost"));
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
    fn load(&self) -> Result<Loaded, StoreError> {
        self.store.call("read", |inner, now| {
            let store_epoch = inner.epoch;
            let slot = inner.data.slots.entry(self.key.clone()).or_default();
            let epoch_age = slot.epoch_age(store_epoch, now);
            let record = slot.record.clone();
            inner.last_read = record
                .iter()
                .filter_map(|r| r.tokens.as_ref()?.refresh_token.as_ref())
                .map(|t| t.expose_secret().to_owned())
                .collect();
            Loaded::new(record).with_epoch_age(epoch_age)
        })
    }

    fn swap(&self, expected: u64, new: &Record) -> Result<Swap, StoreError> {
        self.store.call("write", |inner, now| {
            let store_epoch = inner.epoch;
            let slot = inner.data.slots.entry(self.key.clone()).or_default();
            let epoch_age = Some(slot.epoch_age(store_epoch, now));
            let current = Record::version_of(slot.record.as_ref());
            if current != expected || new.version <= expected {
                return Swap::Conflict;
            }
            slot.record = Some(new.clone());
            slot.held = true;
            if let Some(rt) = new.tokens.as_ref().and_then(|t| t.refresh_token.as_ref()) {
                inner.written.push(rt.expose_secret().to_owned());
            }
            let snapshot = inner.data.clone();
            inner.snapshots.push(snapshot);
            Swap::Stored { version: new.version, epoch_age }
        })
    }
}

/// A store answer in a few words, tokens by name (the simulation's tokens are not secrets).
fn describe(value: &dyn std::any::Any) -> String {
    let record = |r: &Record| {
        let tokens = r.tokens.as_ref();
        let rt = tokens.and_then(|t| t.refresh_token.as_ref()).map_or("-", |t| t.expose_secret());
        let refused = if tokens.is_some_and(|t| t.refused) { " (refused)" } else { "" };
        let claim =
            r.claim.as_ref().map(|c| format!(" claimed by {}", c.holder)).unwrap_or_default();
        format!("v{} {rt}{refused}{claim}", r.version)
    };
    if let Some(loaded) = value.downcast_ref::<Loaded>() {
        let age = loaded
            .epoch_age
            .map(|a| format!(" (store up {:.1}s)", a.as_secs_f64()))
            .unwrap_or_default();
        return loaded.record.as_ref().map_or("nothing stored".into(), record) + &age;
    }
    if let Some(swap) = value.downcast_ref::<Swap>() {
        return match swap {
            Swap::Stored { version, .. } => format!("stored v{version}"),
            _ => "conflict".into(),
        };
    }
    "done".into()
}
