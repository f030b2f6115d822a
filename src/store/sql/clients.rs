//! Clients (API keys): who holds a key ([`ClientKeys`], read on every call's authentication)
//! and the audited writes of clients ([`ClientWrites`]).

use super::*;

#[async_trait]
impl ClientKeys for SqlStore {
    async fn client_by_key_hash(&self, key_hash: &str) -> StoreResult<Option<Caller>> {
        read_again_if_dropped(|| self.client_by_key_hash_once(key_hash)).await
    }
}

impl SqlStore {
    /// [`ClientKeys::client_by_key_hash`], read once.
    async fn client_by_key_hash_once(&self, key_hash: &str) -> StoreResult<Option<Caller>> {
        let row = sqlx::query(
            "SELECT client_id, key_hash, tenants, capabilities, created_at, revoked_at FROM clients \
             WHERE key_hash = $1 AND revoked_at IS NULL",
        )
        .bind(key_hash)
        .fetch_optional(&self.pool)
        .await?;
        // Found by the hash itself: a row is the key's, and nothing is left to compare.
        row.map(|row| Ok(client_from(&row)?.caller)).transpose()
    }
}

#[async_trait]
impl ClientWrites for SqlStore {
    async fn create_client(
        &self,
        ctx: Option<&WriteCtx>,
        client_id: &ClientId,
        tenants: &TenantBounds,
        capabilities: Capabilities,
        key_hash: &str,
    ) -> StoreResult<Revision> {
        // A rule of the caller and the request alone: judged before the write lock.
        if let Some(ctx) = ctx {
            rules::create_client(&ctx.caller, tenants, capabilities)?;
        }
        let mut w = self.begin_write().await?;
        let exists: Option<String> =
            sqlx::query_scalar("SELECT client_id FROM clients WHERE client_id = $1")
                .bind(client_id.as_str())
                .fetch_optional(w.conn())
                .await?;
        if exists.is_some() {
            return Err(StoreError::AlreadyExists(Entity::Client(client_id.clone())));
        }
        let at = ctx.map_or_else(Timestamp::now, |c| c.at);
        sqlx::query(
            "INSERT INTO clients (client_id, key_hash, tenants, capabilities, created_at, revoked_at) VALUES ($1, $2, $3, $4, $5, NULL)",
        )
        .bind(client_id.as_str())
        .bind(key_hash)
        .bind(json::strings_to_text(tenants.to_strings()))
        .bind(i64::from(capabilities.bits()))
        .bind(at.as_micros())
        .execute(w.conn())
        .await
        .map_err(conflict(Entity::Client(client_id.clone())))?;
        let caller = Caller {
            client_id: client_id.clone(),
            tenants: tenants.clone(),
            capabilities,
        };
        let audit = Audit::new("CreateClient", Touched::client(client_id.as_str()))
            .after(Some(json::client_parts_value(&caller, Some(at), None)));
        match ctx {
            Some(ctx) => w.commit_as(ctx, audit).await,
            None => w.commit((CLI_ACTOR, None), at, audit).await,
        }
    }

    async fn revoke_client(
        &self,
        ctx: Option<&WriteCtx>,
        client_id: &ClientId,
    ) -> StoreResult<Revision> {
        let mut w = self.begin_write().await?;
        let row = sqlx::query("SELECT client_id, tenants, capabilities, created_at, revoked_at FROM clients WHERE client_id = $1")
            .bind(client_id.as_str())
            .fetch_optional(w.conn())
            .await?;
        let record = row
            .as_ref()
            .map(client_from)
            .transpose()?
            .filter(|c| c.revoked_at.is_none());
        let record =
            record.ok_or_else(|| StoreError::NotFound(Entity::Client(client_id.clone())))?;
        if let Some(ctx) = ctx {
            rules::revoke_client(&ctx.caller, &record.caller.tenants)?;
        }
        let at = ctx.map_or_else(Timestamp::now, |c| c.at);
        sqlx::query("UPDATE clients SET revoked_at = $2 WHERE client_id = $1")
            .bind(client_id.as_str())
            .bind(at.as_micros())
            .execute(w.conn())
            .await?;
        let revoked = ClientRecord {
            revoked_at: Some(at),
            ..record.clone()
        };
        let audit = Audit::new("RevokeClient", Touched::client(client_id.as_str()))
            .before(Some(json::client_value(&record)))
            .after(Some(json::client_value(&revoked)));
        match ctx {
            Some(ctx) => w.commit_as(ctx, audit).await,
            None => w.commit((CLI_ACTOR, None), at, audit).await,
        }
    }

    async fn ensure_bootstrap_client(&self, key_hash: &str) -> StoreResult<BootstrapOutcome> {
        let mut w = self.begin_write().await?;
        let revoked_at: Option<Option<i64>> =
            sqlx::query_scalar("SELECT revoked_at FROM clients WHERE client_id = 'bootstrap'")
                .fetch_optional(w.conn())
                .await?;
        match revoked_at {
            Some(Some(_)) => return Ok(BootstrapOutcome::Revoked),
            Some(None) => return Ok(BootstrapOutcome::Exists),
            None => {}
        }
        let at = Timestamp::now();
        let caller = Caller {
            client_id: stored(ClientId::parse("client_id", "bootstrap"))?,
            tenants: TenantBounds::All,
            capabilities: Capabilities::all(),
        };
        sqlx::query(
            "INSERT INTO clients (client_id, key_hash, tenants, capabilities, created_at, revoked_at) VALUES ('bootstrap', $1, $2, $3, $4, NULL)",
        )
        .bind(key_hash)
        .bind(json::strings_to_text(caller.tenants.to_strings()))
        .bind(i64::from(caller.capabilities.bits()))
        .bind(at.as_micros())
        .execute(w.conn())
        .await
        .map_err(conflict(Entity::ClientKey))?;
        let audit = Audit::new("CreateClient", Touched::client("bootstrap"))
            .after(Some(json::client_parts_value(&caller, Some(at), None)));
        w.commit((BOOTSTRAP_ACTOR, None), at, audit).await?;
        Ok(BootstrapOutcome::Created)
    }
}
