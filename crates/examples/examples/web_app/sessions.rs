//! The session table, kept in the app's SQLite file so that a restart signs nobody out: which
//! browser is which, and (once signed in) which user it is. What cannot be written down stays
//! in memory: the sign-ins in flight (their PKCE verifiers; a restart ends them, and their
//! callback then says the sign-in expired) and each signed-in user's client (made again from
//! the stored tokens on the first request after a restart).
//!
//! What a review looks for, and where it is:
//! - ids are 128 random bits from the OS, and when the OS cannot supply them no session is made
//!   (never a fixed or predictable id): [`Sessions::start`], [`Sessions::sign_in`];
//! - the table holds only the SHA-256 of each id, never the id: someone who reads the file (a
//!   backup, a copy) cannot present it as anyone's session ([`IdHash`]);
//! - the CSRF token is derived from the session id ([`csrf_of`]): it is in no table either, and
//!   a new id at sign-in is a new token;
//! - signing in discards the session the browser had before and issues a new id, so an id
//!   planted in a victim's browser before sign-in (session fixation) is worth nothing after:
//!   [`Sessions::sign_in`];
//! - the table is bounded, and when it is full the longest-idle *anonymous* session makes room:
//!   a flood of anonymous requests never signs anyone out ([`Sessions::make_room`]);
//! - sessions expire after an idle period, by the wall clock (it means the same after a
//!   restart); a session that ends (sign-out, expiry, replaced at sign-in) takes its user's
//!   tokens with it.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use helloflex::{Client, CsrfState, Entropy, PendingAuthorization, SqlStore};
use rusqlite::{Connection, OptionalExtension, params};

/// Sign-ins a session may have in flight at once (one per tab); a fifth drops the oldest.
const PENDING_PER_SESSION: usize = 4;

/// The app's own table, beside the SDK's `helloflex_*` tables in the same file.
const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS web_app_sessions (
        id_hash BLOB PRIMARY KEY,       -- SHA-256 of the session id (never the id)
        user_id TEXT UNIQUE,            -- NULL while anonymous; the key of the user's tokens
        last_seen_ms INTEGER NOT NULL   -- wall clock, milliseconds since the Unix epoch
    );
    CREATE INDEX IF NOT EXISTS web_app_sessions_idle
        ON web_app_sessions (user_id IS NULL, last_seen_ms);
";

/// Milliseconds since the Unix epoch: the wall clock, which means the same after a restart.
pub type Millis = i64;

/// The SHA-256 of a session id: the table's key. The id itself (the cookie's value) is never
/// stored, so the table is no list of valid cookies.
type IdHash = [u8; 32];

fn hash(id: &str) -> IdHash {
    hmac_sha256::Hash::hash(id.as_bytes())
}

/// The CSRF token of the session `id`: HMAC-SHA-256 keyed with the id (128 random bits), cut
/// to 128 bits in hex. Unguessable without the cookie, in no table (the stored hash is another
/// function of the id), and new with each new id.
pub fn csrf_of(id: &str) -> CsrfState {
    let mac = hmac_sha256::HMAC::mac(b"web_app csrf token", id.as_bytes());
    CsrfState::new(hex(&mac[..16]))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One browser's session, as a request sees it.
pub struct Session {
    /// Sign-ins started and not yet completed (a forged callback leaves them in place).
    pub pending: Vec<PendingAuthorization>,
    /// Set once a callback succeeded.
    pub user: Option<User>,
}

/// A signed-in user.
#[derive(Clone)]
pub struct User {
    /// This user's client: their own token store (their row in the database), the pool every
    /// user shares.
    pub client: Client,
    /// The anti-CSRF token every form of this session carries (see `logout`). `CsrfState` is
    /// the SDK's secret string: redacted in `Debug`, zeroed on drop, and `==` compares in
    /// constant time, so a wrong guess learns nothing from the response time.
    pub csrf: CsrfState,
}

/// Why no session was made, or none could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The OS could not supply random bytes: better no session than a guessable one.
    NoRandomness,
    /// The table is full of signed-in sessions, and none is given up for a newcomer.
    Full,
    /// The database failed (the detail is for the server's log).
    Storage(String),
}

impl From<rusqlite::Error> for Refused {
    fn from(e: rusqlite::Error) -> Self {
        Refused::Storage(format!("the session table: {e}"))
    }
}

/// Every live session, in the database, and what of them lives in memory.
pub struct Sessions {
    db: Connection,
    /// Sign-ins in flight, by session.
    pending: HashMap<IdHash, Vec<PendingAuthorization>>,
    /// Signed-in users' clients, by user id, made on a session's first request.
    clients: HashMap<String, Client>,
    /// The client every user's is made from.
    client: Client,
    /// The users' tokens: `tokens.for_user(user_id)` is one user's row.
    tokens: SqlStore,
    max: usize,
    idle: Duration,
    entropy: Arc<dyn Entropy>,
}

impl Sessions {
    /// The session table in the SQLite file at `path` (created if need be), for users of
    /// `client` whose tokens are in `tokens`: at most `max` sessions that end after `idle`
    /// without a request, with ids drawn from `entropy` (`helloflex::OsEntropy` outside tests).
    pub fn open(
        path: &Path,
        client: Client,
        tokens: SqlStore,
        max: usize,
        idle: Duration,
        entropy: Arc<dyn Entropy>,
    ) -> Result<Self, rusqlite::Error> {
        create_private(path);
        let db = Connection::open(path)?;
        db.busy_timeout(Duration::from_secs(2))?;
        // WAL: the SDK's reads and ours do not wait for each other's writes; FULL: a commit
        // (a sign-in) is on disk before the browser is told.
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "FULL")?;
        db.execute_batch(SCHEMA)?;
        Ok(Self {
            db,
            pending: HashMap::new(),
            clients: HashMap::new(),
            client,
            tokens,
            max: max.max(1),
            idle,
            entropy,
        })
    }

    /// Sessions end after `idle` without a request from now on.
    pub fn set_idle(&mut self, idle: Duration) {
        self.idle = idle;
    }

    /// At most `max` sessions (at least one) are kept from now on.
    pub fn set_max(&mut self, max: usize) {
        self.max = max.max(1);
    }

    /// Ids are drawn from `entropy` from now on.
    pub fn set_entropy(&mut self, entropy: Arc<dyn Entropy>) {
        self.entropy = entropy;
    }

    fn idle_ms(&self) -> Millis {
        Millis::try_from(self.idle.as_millis()).unwrap_or(Millis::MAX)
    }

    /// The live session `id`, marked as seen now; an expired one is ended and not returned.
    pub fn get(&mut self, id: &str, now: Millis) -> Result<Option<Session>, Refused> {
        let key = hash(id);
        let row: Option<(Option<String>, Millis)> = self
            .db
            .query_row(
                "SELECT user_id, last_seen_ms FROM web_app_sessions WHERE id_hash = ?1",
                params![key],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        let Some((user_id, last_seen)) = row else {
            self.pending.remove(&key);
            return Ok(None);
        };
        let idle_for = now.saturating_sub(last_seen);
        if idle_for >= self.idle_ms() {
            self.end(&key)?;
            return Ok(None);
        }
        // Marked as seen at most every 1/30 of the idle time (a minute at most): a page view
        // is not a disk write each time. A session may so end up to that much early.
        if idle_for >= (self.idle_ms() / 30).min(60_000) {
            self.db.execute(
                "UPDATE web_app_sessions SET last_seen_ms = ?2 WHERE id_hash = ?1",
                params![key, now],
            )?;
        }
        let user = match user_id {
            Some(user_id) => Some(User { client: self.client_of(&user_id)?, csrf: csrf_of(id) }),
            None => None,
        };
        let pending = self.pending.get(&key).cloned().unwrap_or_default();
        Ok(Some(Session { pending, user }))
    }

    /// The client of the user `user_id`: the one in memory, or (the first time, or after a
    /// restart) a new one on their row of the token table.
    fn client_of(&mut self, user_id: &str) -> Result<Client, Refused> {
        if let Some(client) = self.clients.get(user_id) {
            return Ok(client.clone());
        }
        let client = self.for_user(user_id)?;
        self.clients.insert(user_id.to_owned(), client.clone());
        Ok(client)
    }

    /// A new user: an id of their own (128 random bits) and a client whose tokens go to their
    /// row. Flextell tells the app nothing about who signed in (no `sub`, no userinfo), so
    /// each sign-in is a user of its own (see `callback`).
    pub fn new_user(&self) -> Result<(String, Client), Refused> {
        let user_id = self.random_token().ok_or(Refused::NoRandomness)?;
        let client = self.for_user(&user_id)?;
        Ok((user_id, client))
    }

    fn for_user(&self, user_id: &str) -> Result<Client, Refused> {
        self.client
            .for_user(Arc::new(self.tokens.for_user(user_id)))
            .map_err(|e| Refused::Storage(format!("a user's client: {e}")))
    }

    /// Remembers one more sign-in in flight for the live session `id`, forgetting the oldest
    /// beyond the limit.
    pub fn add_pending(&mut self, id: &str, pending: PendingAuthorization) {
        let list = self.pending.entry(hash(id)).or_default();
        if list.len() >= PENDING_PER_SESSION {
            list.remove(0);
        }
        list.push(pending);
    }

    /// Forgets the sign-in `used` of the session `id` (its callback was refused or failed).
    pub fn drop_pending(&mut self, id: &str, used: &PendingAuthorization) {
        if let Some(list) = self.pending.get_mut(&hash(id)) {
            list.retain(|p| p.id() != used.id());
        }
    }

    /// A new anonymous session holding one sign-in in flight; returns its id.
    pub fn start(&mut self, pending: PendingAuthorization, now: Millis) -> Result<String, Refused> {
        let id = self.random_token().ok_or(Refused::NoRandomness)?;
        if !self.make_room(now)? {
            return Err(Refused::Full);
        }
        let key = hash(&id);
        self.db.execute(
            "INSERT INTO web_app_sessions (id_hash, user_id, last_seen_ms) VALUES (?1, NULL, ?2)",
            params![key, now],
        )?;
        self.pending.insert(key, vec![pending]);
        Ok(id)
    }

    /// Signs the user `user_id` in (their tokens are stored; `client` is theirs): the session
    /// `old_id` is discarded (with any other sign-ins it had in flight, and the user it had)
    /// and a new session with a new id (so a new CSRF token) takes its place. Returns the new
    /// id. On an error there is no session at all, old or new, and the user's tokens are
    /// deleted.
    pub fn sign_in(
        &mut self,
        old_id: &str,
        user_id: &str,
        client: Client,
        now: Millis,
    ) -> Result<String, Refused> {
        let signed_in = self.insert_user(old_id, user_id, client, now);
        if signed_in.is_err() {
            self.forget_user(user_id);
        }
        signed_in
    }

    fn insert_user(
        &mut self,
        old_id: &str,
        user_id: &str,
        client: Client,
        now: Millis,
    ) -> Result<String, Refused> {
        // Gone first, whatever follows: the pre-login id must never become a signed-in one.
        // (It may be gone already: another tab's callback signed this browser in meanwhile.)
        self.end(&hash(old_id))?;
        let id = self.random_token().ok_or(Refused::NoRandomness)?;
        if !self.make_room(now)? {
            return Err(Refused::Full);
        }
        self.db.execute(
            "INSERT INTO web_app_sessions (id_hash, user_id, last_seen_ms) VALUES (?1, ?2, ?3)",
            params![hash(&id), user_id, now],
        )?;
        self.clients.insert(user_id.to_owned(), client);
        Ok(id)
    }

    /// Ends the session `id`, if there is one.
    pub fn remove(&mut self, id: &str) -> Result<(), Refused> {
        self.end(&hash(id))
    }

    /// Ends a session: its row, its sign-ins in flight, and its user's client and tokens.
    fn end(&mut self, key: &IdHash) -> Result<(), Refused> {
        self.pending.remove(key);
        let user: Option<Option<String>> = self
            .db
            .query_row(
                "DELETE FROM web_app_sessions WHERE id_hash = ?1 RETURNING user_id",
                params![key],
                |row| row.get(0),
            )
            .optional()?;
        if let Some(Some(user_id)) = user {
            self.forget_user(&user_id);
        }
        Ok(())
    }

    /// Drops a signed-out user's client, then deletes their tokens (no user id is ever used
    /// again, so nothing is left behind that could still be refreshed). A failure is logged:
    /// the session is gone either way.
    fn forget_user(&mut self, user_id: &str) {
        self.clients.remove(user_id);
        if let Err(e) = self.tokens.for_user(user_id).delete() {
            eprintln!("web_app: a signed-out user's tokens could not be deleted: {e}");
        }
    }

    /// Sessions held: (anonymous, signed in). For a health page or metrics.
    pub fn counts(&self) -> Result<(usize, usize), Refused> {
        let (all, signed_in): (i64, i64) = self.db.query_row(
            "SELECT COUNT(*), COUNT(user_id) FROM web_app_sessions",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        let count = |n: i64| usize::try_from(n).unwrap_or(0);
        Ok((count(all - signed_in), count(signed_in)))
    }

    /// Makes room for one more session: ends the expired ones, then, if the table is still
    /// full, the longest-idle anonymous one. Returns false when every session is signed in:
    /// a newcomer waits (`503`) rather than signing someone out. Signed-in sessions only come
    /// from completed sign-ins, but one account signing in again and again can still fill the
    /// table (each sign-in is a new user here: the provider names no subject): rate-limit
    /// sign-ins per account and address in front of the app. Each step is one indexed statement.
    fn make_room(&mut self, now: Millis) -> Result<bool, Refused> {
        let expired: Vec<(IdHash, Option<String>)> = {
            let mut statement = self.db.prepare(
                "DELETE FROM web_app_sessions WHERE last_seen_ms <= ?1 RETURNING id_hash, user_id",
            )?;
            statement
                .query_map(params![now.saturating_sub(self.idle_ms())], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })?
                .collect::<Result<_, _>>()?
        };
        for (key, user_id) in expired {
            self.pending.remove(&key);
            if let Some(user_id) = user_id {
                self.forget_user(&user_id);
            }
        }
        let (anonymous, signed_in) = self.counts()?;
        if anonymous + signed_in < self.max {
            return Ok(true);
        }
        let idlest_anonymous: Option<IdHash> = self
            .db
            .query_row(
                "SELECT id_hash FROM web_app_sessions WHERE user_id IS NULL \
                 ORDER BY last_seen_ms, rowid LIMIT 1",
                [],
                |row| row.get(0),
            )
            .optional()?;
        match idlest_anonymous {
            Some(key) => {
                self.end(&key)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// 128 random bits as 32 hex characters (a session or user id), or `None` when the OS RNG
    /// fails: a caller then refuses rather than falling back to anything predictable.
    fn random_token(&self) -> Option<String> {
        let mut bytes = [0u8; 16];
        self.entropy.fill(&mut bytes).ok()?;
        Some(hex(&bytes))
    }
}

/// Creates the file at `path` readable by its owner only (0600 on Unix) if it does not exist,
/// before SQLite opens it (SQLite would create it as the umask says; its journal files take
/// the file's mode). An existing file is left as it is; a failure here shows when SQLite opens
/// the file.
fn create_private(path: &Path) {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let _ = options.open(path);
}
