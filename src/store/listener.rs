//! Notifications of committed writes: on Postgres, a LISTEN connection of its own on the channel
//! that a trigger on the revision row notifies (migrations/postgres); other backends have none.
//!
//! Invariant: a notification only says "the change log has grown to at least this revision";
//! losing one loses nothing but promptness (the change log itself is the truth).

use sqlx::postgres::PgListener;

use super::StoreResult;
use crate::domain::Revision;

/// The channel the revision trigger notifies (its payload is the committed revision).
pub const CHANNEL: &str = "consentry_revision";

/// A live subscription to committed writes.
pub struct ChangeListener {
    inner: PgListener,
}

impl ChangeListener {
    /// Connects its own session to the database at `url` and listens on [`CHANNEL`].
    pub(super) async fn connect(url: &str) -> StoreResult<ChangeListener> {
        let mut inner = PgListener::connect(url).await?;
        inner.listen(CHANNEL).await?;
        Ok(ChangeListener { inner })
    }

    /// The next notified revision (`Revision::number(u64::MAX)` for an unreadable payload, meaning
    /// "read the log"), or an error when the connection was lost: notifications may have been
    /// missed since, and the listener is to be replaced.
    pub async fn next(&mut self) -> StoreResult<Revision> {
        match self.inner.try_recv().await? {
            Some(note) => Ok(note
                .payload()
                .parse()
                .map_or(Revision::number(u64::MAX), Revision::number)),
            None => Err(sqlx::Error::PoolClosed.into()),
        }
    }
}
