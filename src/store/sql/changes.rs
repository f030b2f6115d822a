//! The change log: what changed since a revision (read by every instance's poll), pruning it,
//! and the Postgres notifications that wake the instances.

use super::*;

impl SqlStore {
    pub(super) async fn changes_since(
        &self,
        after: Revision,
    ) -> StoreResult<(Vec<(Revision, ChangeKey)>, Revision)> {
        let current = self.revision().await?;
        if current <= after || current.0 - after.0 > crate::store::MAX_CHANGES_READ {
            return Ok((Vec::new(), current));
        }
        let rows = sqlx::query("SELECT revision, key FROM changes WHERE revision > $1 AND revision <= $2 ORDER BY revision, key")
            .bind(rev_i64(after))
            .bind(rev_i64(current))
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
                Ok((rev_from(col(r, "revision")?), key))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok((changes, current))
    }

    pub(super) async fn prune_changes(&self, before: Revision) -> StoreResult<()> {
        sqlx::query("DELETE FROM changes WHERE revision < $1")
            .bind(rev_i64(before))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub(super) async fn listen_for_changes(
        &self,
    ) -> StoreResult<Option<crate::store::listener::ChangeListener>> {
        match &self.listen_url {
            Some(url) => Ok(Some(
                crate::store::listener::ChangeListener::connect(url).await?,
            )),
            None => Ok(None),
        }
    }

    pub(super) async fn client_by_key_hash(&self, key_hash: &str) -> StoreResult<Option<Caller>> {
        let row = sqlx::query(
            "SELECT client_id, key_hash, tenants, capabilities, created_at, revoked_at FROM clients \
             WHERE key_hash = $1 AND revoked_at IS NULL",
        )
        .bind(key_hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let stored_hash: String = col(&row, "key_hash")?;
        if !bool::from(stored_hash.as_bytes().ct_eq(key_hash.as_bytes())) {
            return Ok(None);
        }
        Ok(Some(client_from(&row)?.caller))
    }
}
