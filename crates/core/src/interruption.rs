//! Interruptions: a call cut short by another event in this process (a newer sign-in, its
//! async runtime shutting down), told apart from a caller's mistake so that `Error::blame`
//! does not send anyone looking for a bug in their call.

/// A call was cut short by another event in this process, not by its arguments, its settings,
/// the server, the network or the store: nothing outside failed, and calling again is the fix
/// (on a runtime that lives as long as the client, for [`Interruption::RuntimeShutDown`]).
///
/// ```
/// # mod helloflex { pub use ::helloflex_core::*; pub use ::helloflex_core as core; pub use ::http; }
/// use helloflex::{Blame, Error, Interruption};
///
/// // What a caller waiting for a token request hears when a new sign-in replaced its grant.
/// let error = Error::Interrupted(Interruption::Superseded);
/// assert_eq!(error.blame(), Blame::Interruption); // not the caller's doing: call again
/// assert_eq!(error.to_string(), "the call was cut short: a newer sign-in replaced the token request");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Interruption {
    /// A newer sign-in (or a sign-out) replaced the grant the token request was for: its
    /// answer is not used, and calling again uses the newer grant.
    #[error("a newer sign-in replaced the token request")]
    Superseded,
    /// The async runtime this client runs its token requests on has shut down (it was
    /// dropped, or the `block_on` it ran in returned): the task running the token request was
    /// dropped, so it cannot start or finish. Reported at once to every caller waiting for the
    /// token, never after a timeout. Build the client on (or hand it) a runtime that lives as
    /// long as the client.
    #[error(
        "the async runtime this client runs its token requests on has shut down: build the \
         client on (or hand it) a runtime that lives as long as the client"
    )]
    RuntimeShutDown,
    /// The job the call waited on ended without a token to hand over: a look at the store
    /// (which only adopts or writes back what it finds), or one during which the tokens held
    /// were dropped (a sign-out). Calling again asks the cache afresh.
    #[error("the token job ended without a token to hand over")]
    NoToken,
}

#[cfg(test)]
mod tests {
    use super::Interruption;
    use crate::error::{Blame, Error, UsageError};
    use crate::store_error::{StoreError, StoreErrorKind};

    /// Every interruption is blamed on the interruption, never on the caller; a misuse still
    /// is the caller's, and a store failure the store's, whatever its kind.
    #[test]
    fn interruptions_are_not_the_callers_fault() {
        for event in
            [Interruption::Superseded, Interruption::RuntimeShutDown, Interruption::NoToken]
        {
            assert_eq!(Error::from(event).blame(), Blame::Interruption, "{event:?}");
        }
        let misuse = Error::from(UsageError::WrongState("no such state"));
        assert_eq!(misuse.blame(), Blame::Caller);
        for kind in [StoreErrorKind::Busy, StoreErrorKind::Setting, StoreErrorKind::Corrupt] {
            let store = Error::from(StoreError::new("read", kind, "a file"));
            assert_eq!(store.blame(), Blame::Storage, "{kind:?}");
        }
    }
}
