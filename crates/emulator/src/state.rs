//! The emulator's memory: clients, codes, tokens, refresh-token families, items, faults,
//! counters. One mutex; no lock is held across an await.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::config::{ClientRegistration, Consent, EmulatorConfig};
use crate::faults::Fault;

/// Reads the time (the emulator is a consumer: it owns a real clock).
#[allow(clippy::disallowed_methods)]
pub(crate) fn now() -> Instant {
    Instant::now()
}

/// A random opaque value with a prefix.
pub(crate) fn random_token(prefix: &str) -> String {
    let mut bytes = [0u8; 24];
    // The OS RNG failing is not something an emulator can recover from; fall back to time-based
    // uniqueness rather than panic.
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = now().elapsed().as_nanos().to_le_bytes();
        bytes[..16].copy_from_slice(&nanos);
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{hex}")
}

/// What a credential was issued for: a client and the scopes granted to it. A code hands it to
/// the tokens it is exchanged for, a refresh token to its successor, unchanged.
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    pub(crate) client: String,
    pub(crate) scopes: Vec<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct AccessTokenInfo {
    pub(crate) grant: Grant,
    pub(crate) expires_at: Instant,
    pub(crate) revoked: bool,
    pub(crate) family: Option<u64>,
}

#[derive(Debug, Clone)]
pub(crate) struct CodeInfo {
    pub(crate) grant: Grant,
    pub(crate) redirect_uri: String,
    pub(crate) challenge: String,
    pub(crate) expires_at: Instant,
    pub(crate) used: bool,
    pub(crate) family: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct RefreshInfo {
    pub(crate) grant: Grant,
    pub(crate) family: u64,
    pub(crate) used: bool,
}

/// The two credentials a client may present once only.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SingleUse {
    Code,
    RefreshToken,
}

/// Counters readable through the admin API.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Counters {
    /// Token requests by `client_id/grant_type`.
    pub token_requests: BTreeMap<String, u64>,
    /// Times a used refresh token was presented again (each revoked its family).
    pub refresh_token_reuse: u64,
    /// Authorization-code replays (each revoked what the code had issued).
    pub code_replays: u64,
    /// API requests by `METHOD /route`.
    pub requests: BTreeMap<String, u64>,
    /// Access tokens issued to a client while the one issued to it just before still had more
    /// than a quarter of its lifetime left: a duplicate fetch, not a renewal (a client refreshes
    /// in the last 10-15%, or after a rejection near expiry). Counted per client id, whichever
    /// user a token is for: meaningful where one client holds one token at a time. Compared
    /// with tokens issued since the last reset only, so a test's own setup (a sign-in, a token
    /// fetched by another client of the same id) does not count against what it measures.
    pub early_tokens: u64,
    /// API requests refused for their access token, by cause (`expired_token`, ...).
    pub rejected_tokens: BTreeMap<String, u64>,
}

impl Counters {
    /// All token requests.
    pub fn total_token_requests(&self) -> u64 {
        self.token_requests.values().sum()
    }

    /// Token requests of one grant type, all clients.
    pub fn token_requests_for_grant(&self, grant: &str) -> u64 {
        self.token_requests
            .iter()
            .filter(|(k, _)| k.ends_with(&format!("/{grant}")))
            .map(|(_, v)| v)
            .sum()
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub(crate) id: u64,
    pub(crate) body: serde_json::Value,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) config: EmulatorConfig,
    pub(crate) base_url: String,
    pub(crate) clients: HashMap<String, ClientRegistration>,
    pub(crate) codes: HashMap<String, CodeInfo>,
    pub(crate) access: HashMap<String, AccessTokenInfo>,
    pub(crate) refresh: HashMap<String, RefreshInfo>,
    pub(crate) revoked_families: Vec<u64>,
    pub(crate) next_family: u64,
    pub(crate) items: BTreeMap<u64, Item>,
    pub(crate) item_bodies: HashMap<String, u64>,
    pub(crate) next_item: u64,
    pub(crate) faults: Vec<Fault>,
    pub(crate) counters: Counters,
    pub(crate) consent: Consent,
    pub(crate) token_lifetime: Duration,
    pub(crate) client_lifetimes: HashMap<String, Duration>,
    /// When each client's latest access token was issued and when it expires.
    pub(crate) latest_issued: HashMap<String, (Instant, Instant)>,
}

/// Shared state.
#[derive(Debug, Clone)]
pub(crate) struct State(Arc<Mutex<Inner>>);

impl State {
    pub(crate) fn new(config: EmulatorConfig, base_url: String) -> Self {
        Self(Arc::new(Mutex::new(Inner::fresh(config, base_url))))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Back to how it started: no tokens, codes, items, faults or counts; the configured
    /// consent and lifetimes.
    pub(crate) fn reset(&self) {
        let mut inner = self.lock();
        let (config, base_url) = (inner.config.clone(), inner.base_url.clone());
        *inner = Inner::fresh(config, base_url);
    }
}

impl Inner {
    fn fresh(config: EmulatorConfig, base_url: String) -> Self {
        let clients = config.clients.iter().map(|c| (c.id.clone(), c.clone())).collect();
        Inner {
            consent: config.consent,
            token_lifetime: config.token_lifetime,
            config,
            base_url,
            clients,
            codes: HashMap::new(),
            access: HashMap::new(),
            refresh: HashMap::new(),
            revoked_families: Vec::new(),
            next_family: 1,
            items: BTreeMap::new(),
            item_bodies: HashMap::new(),
            next_item: 1,
            faults: Vec::new(),
            counters: Counters::default(),
            client_lifetimes: HashMap::new(),
            latest_issued: HashMap::new(),
        }
    }
}

impl Inner {
    /// Zeroes the counters and forgets which token each client had last (what
    /// [`Counters::early_tokens`] compares with).
    pub(crate) fn reset_counters(&mut self) {
        self.counters = Counters::default();
        self.latest_issued.clear();
    }

    /// Issues an access token for `grant` (and, with a family, a refresh token in it).
    pub(crate) fn issue(&mut self, grant: &Grant, family: Option<u64>) -> serde_json::Value {
        let client = grant.client.as_str();
        let lifetime = self.client_lifetimes.get(client).copied().unwrap_or(self.token_lifetime);
        let access = random_token("hfx_at_");
        let issued = now();
        if let Some((before, expires)) =
            self.latest_issued.insert(client.into(), (issued, issued + lifetime))
            && expires.saturating_duration_since(issued)
                > expires.saturating_duration_since(before) / 4
        {
            self.counters.early_tokens += 1;
        }
        self.access.insert(
            access.clone(),
            AccessTokenInfo {
                grant: grant.clone(),
                expires_at: issued + lifetime,
                revoked: false,
                family,
            },
        );
        let mut body = serde_json::json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": lifetime.as_secs(),
            "scope": grant.scopes.join(" "),
        });
        if let Some(family) = family {
            let refresh = random_token("hfx_rt_");
            self.refresh
                .insert(refresh.clone(), RefreshInfo { grant: grant.clone(), family, used: false });
            body["refresh_token"] = serde_json::Value::String(refresh);
        }
        body
    }

    /// Marks the single-use credential `presented` used, and says whether this was its first
    /// use. Presented again, it is counted as a replay and everything its family was issued is
    /// revoked (RFC 6749 section 4.1.2 for a code, RFC 9700 section 4.14 for a refresh token).
    /// The caller has found it under the same lock; one not found is refused as not first.
    pub(crate) fn first_use(&mut self, kind: SingleUse, presented: &str) -> bool {
        let found = match kind {
            SingleUse::Code => self.codes.get_mut(presented).map(|c| (&mut c.used, c.family)),
            SingleUse::RefreshToken => {
                self.refresh.get_mut(presented).map(|r| (&mut r.used, r.family))
            }
        };
        let Some((used, family)) = found else { return false };
        if !std::mem::replace(used, true) {
            return true;
        }
        match kind {
            SingleUse::Code => self.counters.code_replays += 1,
            SingleUse::RefreshToken => self.counters.refresh_token_reuse += 1,
        }
        self.revoke_family(family);
        false
    }

    /// The refusal of `client` if it is not registered.
    pub(crate) fn unregistered(&self, client: &str) -> Option<String> {
        (!self.clients.contains_key(client))
            .then(|| crate::config::unregistered(client, self.clients.keys().map(String::as_str)))
    }

    /// Revokes every token of a family.
    pub(crate) fn revoke_family(&mut self, family: u64) {
        self.revoked_families.push(family);
        for info in self.access.values_mut() {
            if info.family == Some(family) {
                info.revoked = true;
            }
        }
        self.refresh.retain(|_, r| r.family != family);
    }

    /// Revokes all tokens, or those of one client.
    pub(crate) fn revoke_all(&mut self, client: Option<&str>) {
        for info in self.access.values_mut() {
            if client.is_none_or(|c| c == info.grant.client) {
                info.revoked = true;
            }
        }
        self.refresh.retain(|_, r| client.is_some_and(|c| c != r.grant.client));
    }
}
