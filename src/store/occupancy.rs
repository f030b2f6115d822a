//! What a database already holds, read without changing anything and before any migration runs:
//! no tables at all, consentry's schema with nothing written, consentry's schema and the first
//! write it records, or tables of some other application. `--demo` decides from this whether
//! the database is its own (see `demo::may_load`).

use anyhow::Context;
use sqlx::{ConnectOptions, Connection};

use super::backend::{Backend, options, redact};

/// What the database at a URL holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Occupancy {
    /// No tables at all (a new SQLite file, a new Postgres database or schema).
    Bare,
    /// consentry's schema, and nothing written to it yet (revision 0).
    Unwritten,
    /// consentry's schema with writes; the first audit event, which is never updated or deleted.
    Written(FirstWrite),
    /// Tables, but not consentry's (the first few names, sorted).
    Foreign(Vec<String>),
}

/// The first audit event of a database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstWrite {
    /// The RPC (or command) that wrote it, e.g. `CreateClient`.
    pub action: String,
    /// What it wrote, e.g. `client:demo`.
    pub target: String,
    /// The client that wrote it (`(cli)`, `(bootstrap)` or a client id).
    pub actor: String,
    /// When it created a client that still exists unrevoked: that client's key hash.
    pub live_key_hash: Option<String>,
}

/// The tables whose presence says the schema is consentry's.
const OWN_TABLES: [&str; 3] = ["revision", "audit_events", "clients"];

/// Reads what the database at `url` holds. Nothing is written (an SQLite file that does not
/// exist yet is created empty, as the migrations would create it).
pub async fn occupancy(url: &str) -> anyhow::Result<Occupancy> {
    sqlx::any::install_default_drivers();
    let backend = Backend::of_url(url)?;
    let mut conn = options(url, backend)?
        .connect()
        .await
        .with_context(|| format!("cannot connect to {}", redact(url)))?;
    let read = read(&mut conn, backend).await;
    let _ = conn.close().await;
    read.with_context(|| format!("reading what {} holds", redact(url)))
}

async fn read(conn: &mut sqlx::AnyConnection, backend: Backend) -> anyhow::Result<Occupancy> {
    let list = match backend {
        Backend::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        }
        Backend::Postgres => {
            "SELECT CAST(table_name AS TEXT) FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY 1"
        }
    };
    let tables: Vec<String> = sqlx::query_scalar(list).fetch_all(&mut *conn).await?;
    if tables.is_empty() {
        return Ok(Occupancy::Bare);
    }
    if !OWN_TABLES.iter().all(|own| tables.iter().any(|t| t == own)) {
        return Ok(Occupancy::Foreign(tables.into_iter().take(5).collect()));
    }
    let revision: Option<i64> = sqlx::query_scalar("SELECT value FROM revision WHERE id = 1")
        .fetch_optional(&mut *conn)
        .await?;
    let first: Option<(String, String, String)> = sqlx::query_as(
        "SELECT action, target, actor_client FROM audit_events ORDER BY revision LIMIT 1",
    )
    .fetch_optional(&mut *conn)
    .await?;
    Ok(match (revision.unwrap_or(0), first) {
        (_, Some((action, target, actor))) => {
            let live_key_hash =
                match target.strip_prefix("client:") {
                    Some(client) => sqlx::query_scalar(
                        "SELECT key_hash FROM clients WHERE client_id = $1 AND revoked_at IS NULL",
                    )
                    .bind(client)
                    .fetch_optional(&mut *conn)
                    .await?,
                    None => None,
                };
            Occupancy::Written(FirstWrite {
                action,
                target,
                actor,
                live_key_hash,
            })
        }
        (0, None) => Occupancy::Unwritten,
        // Writes counted but none audited: not a state consentry leaves.
        (_, None) => Occupancy::Foreign(vec!["revision".to_owned()]),
    })
}
