//! `ManagerBuilder`'s setters: a token manager's grant, then its clock, entropy and options; a
//! flavour's module adds the method that builds it (`blocking`, `nonblocking`). The type and its
//! example stay in `manager/mod.rs`, where it is defined: a type's defining module is part of
//! the API other crates pin (their `public-api.txt` names it).

use std::sync::Arc;

use helloflex_core::{AuthorizationCodeConfig, ClientCredentialsConfig};

use crate::clock::{Clock, SystemClock};
use crate::entropy::{Entropy, OsEntropy};
use crate::options::ManagerOptions;
use crate::store::TokenStore;

use super::{GrantConfig, ManagerBuilder};

impl ManagerBuilder {
    /// A manager for the client-credentials grant (HelloFlex).
    pub fn client_credentials(config: ClientCredentialsConfig) -> Self {
        Self::new(GrantConfig::ClientCredentials { config, store: None })
    }

    /// A manager for user tokens (authorization-code grant, Flextell) kept in `store`. The
    /// store is read by the first caller that needs a token, not here.
    pub fn authorization_code(config: AuthorizationCodeConfig, store: Arc<dyn TokenStore>) -> Self {
        Self::new(GrantConfig::AuthorizationCode { config: Arc::new(config), store })
    }

    fn new(grant: GrantConfig) -> Self {
        Self {
            grant,
            clock: Arc::new(SystemClock),
            entropy: Arc::new(OsEntropy),
            options: ManagerOptions::default(),
        }
    }

    /// Shares the client-credentials token through `store` with every process using it: one
    /// of them fetches (holding the store's lease), the others adopt its token. For the
    /// authorization-code grant this replaces the store given at first.
    pub fn shared_store(mut self, shared: Arc<dyn TokenStore>) -> Self {
        match &mut self.grant {
            GrantConfig::ClientCredentials { store, .. } => *store = Some(shared),
            GrantConfig::AuthorizationCode { store, .. } => *store = shared,
        }
        self
    }

    /// The clock (a [`crate::ManualClock`] in tests).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The entropy (the OS by default; a seeded source makes a run replayable).
    pub fn entropy(mut self, entropy: Arc<dyn Entropy>) -> Self {
        self.entropy = entropy;
        self
    }

    /// Lifecycle, retries and the attempt timeout.
    pub fn options(mut self, options: ManagerOptions) -> Self {
        self.options = options;
        self
    }
}
