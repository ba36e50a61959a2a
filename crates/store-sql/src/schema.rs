//! The tables this crate owns, their schema version and the steps that build and upgrade them.
//!
//! Three tables, each named `<prefix><name>` (the prefix is `helloflex_` unless
//! [`crate::SqlStore::with_table_prefix`] says otherwise):
//!
//! - `token_schema`: one row, the schema version of these tables (see [`SCHEMA_VERSION`]).
//! - `tokens`: one row per client (client credentials) or client and user (authorization
//!   code): `record_key` (the primary key: the client id, then `/` and the user id for a user's
//!   record, each percent-encoded where it holds `/`, `%` or a control character), `client_id`
//!   and `user_id` (the same parts, `user_id` NULL for the client's own record), `version` (the
//!   compare-and-swap version, a `u64` kept in a signed 64-bit column: versions past 2^63 read
//!   as negative numbers in SQL, and the store compares them exactly), `value` (the sealed
//!   record: tokens, claim, tombstone, completed authorizations) and `updated_at_ms`.
//! - `token_epochs`: one row per record: `run` (the database server's identity when this
//!   store first saw the data: PostgreSQL's start time; `sqlite` for SQLite, which has no
//!   server), `since_ms` (when the
//!   epoch began, on the database's clock) and `held` (whether a record existed at the last
//!   call, so that its disappearance is seen). Kept apart from the record, so that a record
//!   deleted by anyone is seen as a loss.
//!
//! Nothing else in the database is read or written.

use crate::SqlError;

/// The schema version this SDK reads and writes. Each release that changes the tables adds a
/// step to this module (`steps`) and raises it by one; [`crate::SqlStore::migrate`] applies the missing steps
/// in one transaction, so a database is upgraded by the first instance of the new release
/// (older instances still running then fail with [`SqlError::SchemaTooNew`] and must be
/// replaced: upgrade the whole fleet, as for any schema change).
pub const SCHEMA_VERSION: u32 = 1;

/// The longest table prefix: PostgreSQL cuts identifiers at 63 bytes, and the longest name this
/// crate adds is `token_epochs_pkey` (17 bytes).
const MAX_PREFIX: usize = 40;

/// The table names under one prefix.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Tables {
    pub(crate) prefix: String,
    pub(crate) schema: String,
    pub(crate) tokens: String,
    pub(crate) epochs: String,
}

impl Tables {
    /// The tables under `prefix`: lower-case ASCII letters, digits and `_`, not starting with a
    /// digit, at most 40 bytes, not empty (a plain identifier, the same unquoted in SQLite and
    /// PostgreSQL, that no input can turn into SQL).
    pub(crate) fn new(prefix: &str) -> Result<Self, SqlError> {
        let plain = !prefix.is_empty()
            && prefix.len() <= MAX_PREFIX
            && prefix.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            && !prefix.as_bytes()[0].is_ascii_digit();
        if !plain {
            return Err(SqlError::Setting(format!(
                "the table prefix {prefix:?} is not 1 to {MAX_PREFIX} lower-case ASCII letters, \
                 digits and underscores starting with a letter or an underscore"
            )));
        }
        Ok(Self {
            prefix: prefix.to_owned(),
            schema: format!("{prefix}token_schema"),
            tokens: format!("{prefix}tokens"),
            epochs: format!("{prefix}token_epochs"),
        })
    }
}

/// How the two databases spell a type.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Dialect {
    Sqlite,
    #[cfg(feature = "postgres")]
    Postgres,
}

impl Dialect {
    fn bytes(self) -> &'static str {
        match self {
            Dialect::Sqlite => "BLOB",
            #[cfg(feature = "postgres")]
            Dialect::Postgres => "BYTEA",
        }
    }
}

/// The table of the schema version (created before anything else, by every migration).
pub(crate) fn schema_table(t: &Tables) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {schema} (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            version INTEGER NOT NULL,
            updated_at_ms BIGINT NOT NULL
        )",
        schema = t.schema
    )
}

/// The statements that take the tables from version `n` to `n + 1`, for `n` below
/// [`SCHEMA_VERSION`].
pub(crate) fn steps(t: &Tables, dialect: Dialect, from: u32) -> Vec<String> {
    match from {
        0 => vec![
            format!(
                "CREATE TABLE {tokens} (
                    record_key TEXT PRIMARY KEY,
                    client_id TEXT NOT NULL,
                    user_id TEXT,
                    version BIGINT NOT NULL,
                    value {bytes} NOT NULL,
                    updated_at_ms BIGINT NOT NULL
                )",
                tokens = t.tokens,
                bytes = dialect.bytes()
            ),
            format!(
                "CREATE INDEX {tokens}_by_user ON {tokens} (client_id, user_id)",
                tokens = t.tokens
            ),
            format!(
                "CREATE TABLE {epochs} (
                    record_key TEXT PRIMARY KEY,
                    run TEXT NOT NULL,
                    since_ms BIGINT NOT NULL,
                    held BOOLEAN NOT NULL
                )",
                epochs = t.epochs
            ),
        ],
        // Later releases add their steps here, one per version, never changing an older one.
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_identifiers_are_prefixes() {
        for good in ["helloflex_", "a", "_x", "app2_tokens_"] {
            assert!(Tables::new(good).is_ok(), "{good}");
        }
        let long = "a".repeat(MAX_PREFIX + 1);
        for bad in ["", "1a", "A", "a-b", "a b", "a;drop", "a\"", "ü", long.as_str()] {
            assert!(matches!(Tables::new(bad), Err(SqlError::Setting(_))), "{bad}");
        }
    }

    #[test]
    fn every_version_below_the_current_one_has_a_step() {
        let t = Tables::new("p_").unwrap();
        for from in 0..SCHEMA_VERSION {
            assert!(!steps(&t, Dialect::Sqlite, from).is_empty(), "{from}");
        }
        assert!(steps(&t, Dialect::Sqlite, SCHEMA_VERSION).is_empty());
    }
}
