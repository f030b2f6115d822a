//! [`Settings`]: the deployment's settings kept in the store (the `settings` table, migration
//! 0004), the secret page tokens are signed with. Not audited: no caller writes them, and they
//! are no fact of the permission model.

use base64::Engine;

use super::*;

/// The name of the page-token secret's row.
const PAGE_TOKEN_SECRET: &str = "page_token_secret";

#[async_trait]
impl Settings for SqlStore {
    /// The stored page-token secret; `candidate` is stored first if there is none yet. Two
    /// instances starting at once both insert-if-absent, then read the one row that won.
    async fn page_token_secret(&self, candidate: &PageSecret) -> StoreResult<PageSecret> {
        if let Some(secret) = stored_secret(&self.pool).await? {
            return Ok(secret);
        }
        sqlx::query(
            "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(PAGE_TOKEN_SECRET)
        .bind(encode(candidate))
        .execute(&self.pool)
        .await?;
        stored_secret(&self.pool)
            .await?
            .ok_or_else(|| StoreError::Corrupt("the page-token secret was not stored".into()))
    }
}

async fn stored_secret(pool: &AnyPool) -> StoreResult<Option<PageSecret>> {
    let value: Option<String> = sqlx::query_scalar("SELECT value FROM settings WHERE name = $1")
        .bind(PAGE_TOKEN_SECRET)
        .fetch_optional(pool)
        .await?;
    value.map(|v| decode(&v)).transpose()
}

fn encode(secret: &PageSecret) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret.0)
}

fn decode(text: &str) -> StoreResult<PageSecret> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .map(PageSecret)
        // The value is a secret: never quoted.
        .ok_or_else(|| StoreError::Corrupt("the page-token secret is not 32 bytes".into()))
}
