//! The store's own failures: the database unreachable, its schema too old or too new, a
//! statement refused. Every one is described without a value (no token, no password, no row
//! content), and turns into a [`StoreError`] for the token managers.

use helloflex_auth::{StoreError, StoreErrorKind};

/// A SQL store failed before or besides reading a record (reading one that does not open is a
/// [`StoreError`] of kind [`StoreErrorKind::DoesNotOpen`], from
/// [`helloflex_auth::TokenStore::load`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SqlError {
    /// The database could not be opened or reached (a missing directory, a refused connection,
    /// a failed login, a time-out while connecting).
    #[error("the token database cannot be reached: {reason}")]
    Unreachable {
        /// Why, without the address's password.
        reason: String,
    },
    /// The database holds an older schema than this SDK's, and migrating on first use was
    /// turned off ([`crate::SqlStore::migrate_on_first_use`]): call [`crate::SqlStore::migrate`].
    #[error(
        "the token tables are at schema version {found}, older than this SDK's {supported}; \
         run SqlStore::migrate()"
    )]
    SchemaTooOld {
        /// The version found (0: no token tables yet).
        found: u32,
        /// The version this SDK reads and writes.
        supported: u32,
    },
    /// The database holds a newer schema than this SDK knows (a newer release migrated it):
    /// nothing is read or written; upgrade this SDK.
    #[error(
        "the token tables are at schema version {found}, newer than this SDK's {supported}; \
         upgrade helloflex-store-sql"
    )]
    SchemaTooNew {
        /// The version found.
        found: u32,
        /// The version this SDK reads and writes.
        supported: u32,
    },
    /// A statement failed (a lock not granted in time, a table dropped under the store, a full
    /// disk, a read-only replica).
    #[error("token database {op} failed: {reason}")]
    Database {
        /// What was being done.
        op: &'static str,
        /// Why (the database's error class and message, never a bound value).
        reason: String,
    },
    /// The token tables, or a column of them, were not in the database where this process had
    /// found or made them: dropped, or the database replaced by an empty one (a new cluster, a
    /// restore of a backup taken before the tables existed). The store checks the schema again
    /// on its next call, creating the tables if it migrates on first use.
    #[error("the token tables are gone from the database: {reason}")]
    TablesGone {
        /// The database's message (a table or column name, never a value).
        reason: String,
    },
    /// A setting the store cannot use (a table prefix that is not a plain identifier, a
    /// database kind this build does not include).
    #[error("token store setting refused: {0}")]
    Setting(String),
}

impl SqlError {
    /// The operation when none is named by the caller ([`From<SqlError>`]).
    fn op(&self) -> &'static str {
        match self {
            SqlError::Database { op, .. } => op,
            SqlError::TablesGone { .. } => "schema check",
            SqlError::Unreachable { .. } => "connect",
            SqlError::SchemaTooOld { .. } | SqlError::SchemaTooNew { .. } => "schema check",
            SqlError::Setting(_) => "open",
        }
    }

    /// What kind of store failure this is: the one place a SQL failure is classified, and so
    /// whether the token managers ask again. A schema this SDK cannot use, or a setting, stays
    /// wrong until someone fixes it; a statement refused (a lock not granted in time, a full
    /// disk, a read-only replica) can pass.
    fn kind(&self) -> StoreErrorKind {
        match self {
            SqlError::Unreachable { .. } => StoreErrorKind::Unreachable,
            SqlError::SchemaTooOld { .. } | SqlError::SchemaTooNew { .. } => {
                StoreErrorKind::SchemaMismatch
            }
            SqlError::Database { .. } => StoreErrorKind::Refused,
            // Made again at once when they were all gone: one that reaches a caller is a table
            // dropped alone under a current schema, which waits for an operator.
            SqlError::TablesGone { .. } => StoreErrorKind::SchemaMismatch,
            SqlError::Setting(_) => StoreErrorKind::Setting,
        }
    }

    /// The store error for this failure during `op` (`read`, `write`, ...).
    pub(crate) fn during(self, op: &'static str) -> StoreError {
        let kind = self.kind();
        let detail = match self {
            SqlError::Database { reason, .. } => reason,
            other => other.to_string(),
        };
        StoreError::new(op, kind, detail)
    }
}

impl From<SqlError> for StoreError {
    fn from(error: SqlError) -> Self {
        let op = error.op();
        error.during(op)
    }
}
