//! The server-side session table: which browser is which, what sign-ins it has in flight, and
//! (once signed in) the user's client and the token their forms must carry.
//!
//! What a review looks for, and where it is:
//! - ids are 128 random bits from the OS, and when the OS cannot supply them no session is made
//!   (never a fixed or predictable id): [`Sessions::start`], [`Sessions::sign_in`];
//! - signing in discards the session the browser had before and issues a new id, so an id
//!   planted in a victim's browser before sign-in (session fixation) is worth nothing after:
//!   [`Sessions::sign_in`];
//! - the table is bounded, and when it is full the longest-idle *anonymous* session makes room:
//!   a flood of anonymous requests never signs anyone out ([`Sessions::make_room`]);
//! - sessions expire after an idle period.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use helloflex::{Client, PendingAuthorization};
use helloflex::{CsrfState, Entropy};

/// Sign-ins a session may have in flight at once (one per tab); a fifth drops the oldest.
const PENDING_PER_SESSION: usize = 4;

/// One browser's server-side session.
pub struct Session {
    /// Sign-ins started and not yet completed (a forged callback leaves them in place).
    pub pending: Vec<PendingAuthorization>,
    /// Set once a callback succeeded.
    pub user: Option<User>,
    last_seen: Instant,
}

/// A signed-in user.
#[derive(Clone)]
pub struct User {
    /// This user's client: their own token store, the pool every user shares.
    pub client: Client,
    /// The anti-CSRF token every form of this session carries (see `logout`). `CsrfState` is
    /// the SDK's secret string: redacted in `Debug`, zeroed on drop, and `==` compares in
    /// constant time, so a wrong guess learns nothing from the response time.
    pub csrf: CsrfState,
}

impl Session {
    /// Remembers one more sign-in in flight, forgetting the oldest beyond the limit.
    pub fn add_pending(&mut self, pending: PendingAuthorization) {
        if self.pending.len() >= PENDING_PER_SESSION {
            self.pending.remove(0);
        }
        self.pending.push(pending);
    }
}

/// Why no session was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The OS could not supply random bytes: better no session than a guessable one.
    NoRandomness,
    /// The table is full of signed-in sessions, and none is given up for a newcomer.
    Full,
}

/// Every live session, by id.
pub struct Sessions {
    table: HashMap<String, Session>,
    max: usize,
    idle: Duration,
    entropy: Arc<dyn Entropy>,
}

impl Sessions {
    /// A table of at most `max` sessions that end after `idle` without a request, with ids
    /// drawn from `entropy` (`helloflex::OsEntropy` outside tests).
    pub fn new(max: usize, idle: Duration, entropy: Arc<dyn Entropy>) -> Self {
        Self { table: HashMap::new(), max: max.max(1), idle, entropy }
    }

    /// Sessions end after `idle` without a request from now on.
    pub fn set_idle(&mut self, idle: Duration) {
        self.idle = idle;
    }

    /// At most `max` sessions (at least one) are kept from now on.
    pub fn set_max(&mut self, max: usize) {
        self.max = max.max(1);
    }

    /// Ids and CSRF tokens are drawn from `entropy` from now on.
    pub fn set_entropy(&mut self, entropy: Arc<dyn Entropy>) {
        self.entropy = entropy;
    }

    /// The live session `id`, marked as seen now; an expired one is dropped and not returned.
    pub fn get(&mut self, id: &str, now: Instant) -> Option<&mut Session> {
        let expired = now.duration_since(self.table.get(id)?.last_seen) >= self.idle;
        if expired {
            self.table.remove(id);
            return None;
        }
        let session = self.table.get_mut(id)?;
        session.last_seen = now;
        Some(session)
    }

    /// A new anonymous session holding one sign-in in flight; returns its id.
    pub fn start(
        &mut self,
        pending: PendingAuthorization,
        now: Instant,
    ) -> Result<String, Refused> {
        let id = self.random_token().ok_or(Refused::NoRandomness)?;
        if !self.make_room(now) {
            return Err(Refused::Full);
        }
        let session = Session { pending: vec![pending], user: None, last_seen: now };
        self.table.insert(id.clone(), session);
        Ok(id)
    }

    /// Signs `client`'s user in: the session `old_id` is discarded (with any other sign-ins it
    /// had in flight) and a new session with a new id and a new CSRF token takes its place.
    /// Returns the new id. On an error there is no session at all, old or new.
    pub fn sign_in(
        &mut self,
        old_id: &str,
        client: Client,
        now: Instant,
    ) -> Result<String, Refused> {
        // Gone first, whatever follows: the pre-login id must never become a signed-in one.
        // (It may be gone already: another tab's callback signed this browser in meanwhile.)
        self.table.remove(old_id);
        let id = self.random_token().ok_or(Refused::NoRandomness)?;
        let csrf = CsrfState::new(self.random_token().ok_or(Refused::NoRandomness)?);
        if !self.make_room(now) {
            return Err(Refused::Full);
        }
        let session =
            Session { pending: Vec::new(), user: Some(User { client, csrf }), last_seen: now };
        self.table.insert(id.clone(), session);
        Ok(id)
    }

    /// Ends the session `id`, if there is one.
    pub fn remove(&mut self, id: &str) {
        self.table.remove(id);
    }

    /// Sessions held: (anonymous, signed in). For a health page or metrics.
    pub fn counts(&self) -> (usize, usize) {
        let signed_in = self.table.values().filter(|s| s.user.is_some()).count();
        (self.table.len() - signed_in, signed_in)
    }

    /// Makes room for one more session: drops the expired ones, then, if the table is still
    /// full, the longest-idle anonymous one. Returns false when every session is signed in:
    /// a newcomer waits (`503`) rather than signing someone out. Signed-in sessions only come
    /// from anonymous ones (`sign_in` replaces one), so they cannot crowd the table out faster
    /// than people actually sign in.
    ///
    /// Linear in the table's size, under the lock, each time a session is made: about 1 ms
    /// with the default 10,000 sessions in a debug build. A site that needs far more keeps its
    /// sessions in a store with expiry built in (Redis, a database) under the same rules.
    fn make_room(&mut self, now: Instant) -> bool {
        self.table.retain(|_, s| now.duration_since(s.last_seen) < self.idle);
        if self.table.len() < self.max {
            return true;
        }
        let idlest_anonymous = self
            .table
            .iter()
            .filter(|(_, s)| s.user.is_none())
            .min_by_key(|(_, s)| s.last_seen)
            .map(|(id, _)| id.clone());
        match idlest_anonymous {
            Some(id) => {
                self.table.remove(&id);
                true
            }
            None => false,
        }
    }

    /// 128 random bits as 32 hex characters (a session id or a CSRF token), or `None` when the
    /// OS RNG fails: a caller then refuses rather than falling back to anything predictable.
    fn random_token(&self) -> Option<String> {
        let mut bytes = [0u8; 16];
        self.entropy.fill(&mut bytes).ok()?;
        Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }
}
