//! Whose record a shared store holds: the client, the user, the namespace, in every key and
//! every seal; and how a shared store keeps a record (sealed to its scope).

use std::sync::Arc;

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

use super::encryption::KeyRing;
use helloflex_core::{StoreError, StoreErrorKind};

use super::seam::Record;

/// What a part of a scope may not hold unencoded inside a key: the key's own separators, the
/// braces of a Redis hash tag, and what would make the encoding itself ambiguous.
const PART: &AsciiSet = &CONTROLS.add(b'{').add(b'}').add(b':').add(b'/').add(b'%').add(b' ');

/// The identity of one record in a shared store: the client it belongs to, the user (none for
/// a client's own token), and a namespace (a key prefix; `helloflex` by default).
///
/// A store derives both its key and the identity its sealed values are bound to from the whole
/// scope, never from a part of it, so two users never share a record and a value sealed for
/// one never opens as another's, in whatever order a builder set the parts.
///
/// ```
/// use helloflex_auth::RecordScope;
///
/// let a = RecordScope::new("app").for_user("alice").in_namespace("prod");
/// let b = RecordScope::new("app").in_namespace("prod").for_user("alice");
/// assert_eq!(a, b);
/// assert_eq!(a.key("tokens"), "prod:{app/alice}:tokens");
/// assert_ne!(a.key("tokens"), RecordScope::new("app").in_namespace("prod").for_user("bob").key("tokens"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecordScope {
    client_id: String,
    user: Option<String>,
    namespace: String,
}

impl RecordScope {
    /// The scope of `client_id`'s own record, in the default namespace.
    pub fn new(client_id: &str) -> Self {
        Self { client_id: client_id.to_owned(), user: None, namespace: "helloflex".to_owned() }
    }

    /// The same client's record for `user` (replacing any user set before).
    pub fn for_user(mut self, user: &str) -> Self {
        self.user = Some(user.to_owned());
        self
    }

    /// The same record under `namespace` (replacing the one set before).
    pub fn in_namespace(mut self, namespace: &str) -> Self {
        self.namespace = namespace.to_owned();
        self
    }

    /// The client.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The user, if the record is a user's.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// A key for this scope's `suffix` (`tokens`, `epoch`): `<namespace>:{<client>/<user>}:<suffix>`,
    /// each part percent-encoded so no part can forge another's; the braces keep every key of a
    /// record in one Redis Cluster slot.
    pub fn key(&self, suffix: &str) -> String {
        let client = utf8_percent_encode(&self.client_id, PART);
        let namespace = utf8_percent_encode(&self.namespace, PART);
        match &self.user {
            Some(user) => {
                format!("{namespace}:{{{client}/{}}}:{suffix}", utf8_percent_encode(user, PART))
            }
            None => format!("{namespace}:{{{client}}}:{suffix}"),
        }
    }

    /// What a sealed value of this scope is bound to (its associated data): every part, each
    /// length-prefixed so that no two scopes give the same bytes.
    pub fn binding(&self) -> Vec<u8> {
        let mut bytes = b"helloflex-scope-v1".to_vec();
        let user = self.user.as_deref();
        for part in [Some(self.namespace.as_str()), Some(self.client_id.as_str()), user] {
            match part {
                Some(part) => {
                    bytes.push(1);
                    bytes.extend_from_slice(&(part.len() as u64).to_be_bytes());
                    bytes.extend_from_slice(part.as_bytes());
                }
                None => bytes.push(0),
            }
        }
        bytes
    }
}

/// How a shared store (Redis, SQL) keeps a record: sealed with a key ring and bound to the
/// record's whole [`RecordScope`], or, only for tests and moving data, as JSON in clear. One
/// encoding for every shared store, so a value copied to another user's record never opens.
///
/// ```
/// use std::sync::Arc;
/// use helloflex_auth::{Key, KeyRing, Record, RecordScope, RecordSealing, StoredTokens};
///
/// let sealing = RecordSealing::Sealed(Arc::new(KeyRing::new(Key::generate("k1")?)));
/// let tokens: StoredTokens = serde_json::from_str(r#"{"access_token":"at-secret","expires_at_unix_ms":1}"#)?;
/// let alice = RecordScope::new("app").for_user("alice");
/// let stored = sealing.encode(&Record::new(tokens, 1), &alice)?;
/// assert!(!stored.windows(9).any(|w| w == b"at-secret"));
/// // Read back at the version the store keeps beside the value.
/// assert_eq!(sealing.decode(stored.clone(), 7, &alice, || "alice".into())?.version, 7);
/// // Bob's record holding Alice's value: it does not open.
/// let bob = RecordScope::new("app").for_user("bob");
/// assert!(sealing.decode(stored, 7, &bob, || "bob".into()).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub enum RecordSealing {
    /// Encrypted with the ring's active key, bound to the record's scope.
    Sealed(Arc<KeyRing>),
    /// JSON in clear: anyone who reads the store can use the refresh token.
    Plaintext,
}

impl std::fmt::Debug for RecordSealing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.is_sealed() { "Sealed" } else { "Plaintext" })
    }
}

impl RecordSealing {
    /// Whether records are encrypted.
    pub fn is_sealed(&self) -> bool {
        matches!(self, RecordSealing::Sealed(_))
    }

    /// `record` as the store keeps it for `scope`.
    pub fn encode(&self, record: &Record, scope: &RecordScope) -> Result<Vec<u8>, StoreError> {
        let unwritable =
            |detail: String| StoreError::new("write", StoreErrorKind::Unwritable, detail);
        let json = zeroize::Zeroizing::new(
            serde_json::to_vec(record)
                .map_err(|_| unwritable("the record did not serialise".into()))?,
        );
        match self {
            RecordSealing::Sealed(keys) => keys
                .seal(&json, &scope.binding())
                .map_err(|e| unwritable(format!("sealing failed: {e}"))),
            RecordSealing::Plaintext => Ok(json.to_vec()),
        }
    }

    /// A stored value of `scope`'s record read back, at the `version` the store keeps beside
    /// it (the one compare-and-swap compares); `key` names the record in an error (never its
    /// value).
    pub fn decode(
        &self,
        value: Vec<u8>,
        version: u64,
        scope: &RecordScope,
        key: impl FnOnce() -> String,
    ) -> Result<Record, StoreError> {
        let json = match self {
            RecordSealing::Sealed(keys) => match keys.open(&value, &scope.binding()) {
                Ok(json) => json,
                Err(e) => {
                    let kind = StoreErrorKind::DoesNotOpen(e);
                    return Err(StoreError::new("read", kind, format!("record {}", key())));
                }
            },
            RecordSealing::Plaintext => zeroize::Zeroizing::new(value),
        };
        let mut record: Record = serde_json::from_slice(&json).map_err(|e| {
            let at = format!("{:?} at line {} column {}", e.classify(), e.line(), e.column());
            let detail = format!("record {}: not a token set ({at})", key());
            StoreError::new("read", StoreErrorKind::Corrupt, detail)
        })?;
        record.version = version;
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::RecordScope;

    use helloflex_testkit::TRICKY_SCOPE_PARTS as TRICKY;

    /// Every scope made of [`TRICKY`] parts: each client, with no user or each user, in each
    /// namespace.
    fn every_scope() -> Vec<RecordScope> {
        let mut scopes = Vec::new();
        for client in TRICKY {
            for user in std::iter::once(None).chain(TRICKY.iter().map(Some)) {
                for namespace in TRICKY {
                    let scope = RecordScope::new(client).in_namespace(namespace);
                    scopes.push(match user {
                        Some(user) => scope.for_user(user),
                        None => scope,
                    });
                }
            }
        }
        scopes
    }

    /// The hash tag Redis Cluster hashes a key by: from the first `{` to the next `}`.
    fn hash_tag(key: &str) -> &str {
        let open = key.find('{').expect("a key has a hash tag");
        let close = open + key[open..].find('}').expect("a hash tag is closed");
        &key[open + 1..close]
    }

    #[test]
    fn the_builder_order_does_not_change_the_scope_its_keys_or_its_binding() {
        for client in TRICKY {
            for user in TRICKY {
                for namespace in TRICKY {
                    let a = RecordScope::new(client).for_user(user).in_namespace(namespace);
                    let b = RecordScope::new(client).in_namespace(namespace).for_user(user);
                    assert_eq!(a, b, "{client:?} {user:?} {namespace:?}");
                    assert_eq!(a.key("tokens"), b.key("tokens"));
                    assert_eq!(a.key("epoch"), b.key("epoch"));
                    assert_eq!(a.binding(), b.binding());
                    assert_eq!(
                        (a.client_id(), a.user(), a.namespace()),
                        (*client, Some(*user), *namespace),
                        "every part kept as given"
                    );
                }
            }
        }
    }

    #[test]
    fn the_last_user_and_namespace_set_replace_the_earlier_ones() {
        let scope = RecordScope::new("app")
            .for_user("alice")
            .in_namespace("old")
            .for_user("bob")
            .in_namespace("new");
        assert_eq!(scope, RecordScope::new("app").for_user("bob").in_namespace("new"));
        assert_eq!(scope.key("tokens"), "new:{app/bob}:tokens");
        assert_eq!(RecordScope::new("app").namespace(), "helloflex", "the default namespace");
        assert_eq!(RecordScope::new("app"), RecordScope::new("app").in_namespace("helloflex"));
    }

    #[test]
    fn no_two_distinct_scopes_share_a_key_or_a_binding() {
        let scopes = every_scope();
        let mut keys: HashMap<String, &RecordScope> = HashMap::new();
        let mut bindings: HashMap<Vec<u8>, &RecordScope> = HashMap::new();
        for scope in &scopes {
            // A record key never equals another record's key, nor any record's epoch key.
            for suffix in ["tokens", "epoch"] {
                if let Some(other) = keys.insert(scope.key(suffix), scope) {
                    assert_eq!(other, scope, "{:?} shared by two scopes", scope.key(suffix));
                }
            }
            if let Some(other) = bindings.insert(scope.binding(), scope) {
                assert_eq!(other, scope, "one binding for two scopes");
            }
        }
        let distinct: std::collections::HashSet<_> = scopes.iter().collect();
        assert_eq!(keys.len(), 2 * distinct.len(), "two keys per distinct scope");
        assert_eq!(bindings.len(), distinct.len(), "one binding per distinct scope");
    }

    #[test]
    fn a_separator_inside_a_part_is_not_a_boundary_between_parts() {
        let key = |scope: RecordScope| scope.key("tokens");
        // A user with a slash is not a client and a user; a client with a slash is not either.
        let pair = RecordScope::new("a").for_user("b");
        for forged in [
            RecordScope::new("a/b"),
            RecordScope::new("a").for_user("a/b"),
            RecordScope::new("a/").for_user("b"),
            RecordScope::new("a").for_user("/b"),
            RecordScope::new("a/b").for_user(""),
        ] {
            assert_ne!(key(forged.clone()), key(pair.clone()), "{forged:?}");
            assert_ne!(forged.binding(), pair.binding(), "{forged:?}");
        }
        // A colon in the namespace or the client does not move the hash tag or the suffix.
        assert_ne!(
            key(RecordScope::new("c").in_namespace("ns:{x}")),
            key(RecordScope::new("x").in_namespace("ns"))
        );
        // A client's own record is not the record of a user with an empty name.
        assert_ne!(key(RecordScope::new("a")), key(RecordScope::new("a").for_user("")));
        assert_ne!(RecordScope::new("a").binding(), RecordScope::new("a").for_user("").binding());
        // An encoded-looking part stays what it is: `%2F` is not `/`.
        assert_ne!(key(RecordScope::new("a%2Fb")), key(RecordScope::new("a/b")));
        assert_eq!(
            key(RecordScope::new("a:b").for_user("c/d {é}%").in_namespace("n s")),
            "n%20s:{a%3Ab/c%2Fd%20%7B%C3%A9%7D%25}:tokens"
        );
    }

    /// A client id is never blank (`ClientIdentity` refuses one); the scope of a blank client
    /// without a user would have the empty tag `{}`, which Redis Cluster ignores (it hashes the
    /// whole key), so it is left out here.
    #[test]
    fn every_key_of_a_record_has_one_hash_tag_naming_only_its_client_and_user() {
        let mut tags: HashMap<String, (String, Option<String>)> = HashMap::new();
        let named = |s: &RecordScope| !s.client_id().is_empty() || s.user().is_some();
        for scope in every_scope().into_iter().filter(named) {
            let (tokens, epoch) = (scope.key("tokens"), scope.key("epoch"));
            assert_eq!(hash_tag(&tokens), hash_tag(&epoch), "one Redis Cluster slot: {tokens}");
            assert!(!hash_tag(&tokens).is_empty(), "an empty tag hashes the whole key: {tokens}");
            let owner = (scope.client_id().to_owned(), scope.user().map(str::to_owned));
            let previous = tags.insert(hash_tag(&tokens).to_owned(), owner.clone());
            assert!(previous.is_none_or(|p| p == owner), "a tag shared by two records: {tokens}");
        }
    }
}
