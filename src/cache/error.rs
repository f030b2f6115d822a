//! Why a read cannot be answered: each becomes a status in `service::status`, never an answer.

use std::time::Duration;

use crate::domain::Revision;
use crate::store::StoreError;

/// Why the cache cannot answer.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The store has not been reached since the process started.
    #[error("consentry is starting: the store has not been reached yet")]
    Starting,
    /// The change log was last read longer ago than the staleness bound allows.
    #[error(
        "the store has not been heard from for {:.1} s, beyond the {:.1} s this instance may answer from its cache",
        .age.as_secs_f64(), .bound.as_secs_f64()
    )]
    Stale {
        /// How long ago the change log was last read in full.
        age: Duration,
        /// `--max-staleness`.
        bound: Duration,
    },
    /// The store is known to be unreachable; the answer needs it.
    #[error("the store is unreachable; this answer needs it")]
    StoreDown,
    /// A token newer than anything the store has committed.
    #[error("at_least_as_fresh {} is newer than anything committed (newest: {})", .token.token(), .newest.token())]
    FromTheFuture {
        /// The caller's token.
        token: Revision,
        /// The store's newest revision.
        newest: Revision,
    },
    /// A caller's token names a revision of another history than the store holds now (it was
    /// restored from a backup, or failed over with commits lost).
    #[error(
        "at_least_as_fresh {} names a revision the store no longer holds: its history was replaced \
         (restored from a backup, or failed over with commits lost) since the token was handed out; \
         read without the token, or with one handed out since",
        .token.token()
    )]
    OtherHistory {
        /// The caller's token.
        token: Revision,
    },
    /// A snapshot was read from another history than the one this instance applied; the
    /// request gathers again once the instance follows the store's.
    #[error("the store's history changed while the answer was read; retry")]
    HistoryChanged,
    /// Writes kept landing while the answer was gathered.
    #[error("writes kept landing while the answer was read; retry")]
    Unsettled,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
