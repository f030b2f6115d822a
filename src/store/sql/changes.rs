//! The change log ([`ChangeLog`]): what changed since a revision (read by every instance's
//! poll), pruning it, the Postgres notifications that wake the instances, and the connection of
//! its own that says why the poll got none from the pool.

use sqlx::{ConnectOptions, Connection};

use super::*;

#[async_trait]
impl ChangeLog for SqlStore {
    async fn changes_since(&self, after: Revision) -> StoreResult<ChangeRead> {
        read_again_if_dropped(|| self.changes_since_once(after)).await
    }

    async fn revision_tag(&self, number: u64) -> StoreResult<Option<Tag>> {
        read_again_if_dropped(|| async { tag_in(&mut *self.conn().await?, number).await }).await
    }

    async fn prune_changes(&self, before: Revision) -> StoreResult<()> {
        sqlx::query("DELETE FROM changes WHERE revision < $1")
            .bind(rev_i64(before))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn listen_for_changes(
        &self,
    ) -> StoreResult<Option<crate::store::listener::ChangeListener>> {
        match &self.listen_url {
            Some(url) => Ok(Some(
                crate::store::listener::ChangeListener::connect(url).await?,
            )),
            None => Ok(None),
        }
    }

    async fn try_connect(&self) -> StoreResult<()> {
        let conn = self.pool.connect_options().connect().await?;
        let _ = conn.close().await;
        Ok(())
    }
}

impl SqlStore {
    /// [`ChangeLog::changes_since`], read once.
    async fn changes_since_once(&self, after: Revision) -> StoreResult<ChangeRead> {
        // One statement: the head with its tag, and the tag the store records for `after`
        // (NULL, read as none, when it records no such revision).
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {REVISION_COLUMNS}, \
                    COALESCE((SELECT a.tag FROM audit_events a WHERE a.revision = $1), 0) AS after_tag"
        )))
        .bind(rev_i64(after))
        .fetch_one(&self.pool)
        .await?;
        let head = revision_from(&row)?;
        let after_tag = revision_of(0, Some(col(&row, "after_tag")?)).tag();
        let same_history = head >= after && (after.0 == 0 || after_tag == after.tag());
        let read = |changes| ChangeRead {
            head,
            same_history,
            changes,
        };
        if !same_history || head <= after || head.0 - after.0 > crate::store::MAX_CHANGES_READ {
            return Ok(read(Vec::new()));
        }
        let rows = sqlx::query(
            "SELECT c.revision, c.key, a.tag FROM changes c \
             LEFT JOIN audit_events a ON a.revision = c.revision \
             WHERE c.revision > $1 AND c.revision <= $2 ORDER BY c.revision, c.key",
        )
        .bind(rev_i64(after))
        .bind(rev_i64(head))
        .fetch_all(&self.pool)
        .await?;
        let changes = rows
            .iter()
            .map(|r| {
                let key = col::<String>(r, "key")?;
                // A key this build does not know (written by a newer one) invalidates everything.
                let key = key.parse().unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "invalidating every cache");
                    ChangeKey::Everything
                });
                Ok((revision_of(col(r, "revision")?, col(r, "tag")?), key))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(read(changes))
    }
}
