//! What differs per backend: recognising the database URL, connecting, and the migration set.
//! Postgres is the production store (shared by many instances); an SQLite file is the embedded
//! default for one process.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgDatabaseError, PgSeverity};
use sqlx::{AnyPool, ConnectOptions, Connection};

use super::SqlStore;

/// The embedded default store: an SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://consentry.db";

/// How long a statement waits for a pooled connection (including connecting one) before the
/// store counts as unreachable: short, so that a database outage fails calls fast instead of
/// holding them (and their concurrency slots) for the whole request timeout.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(1);

/// Whether `e` says the database could not be reached (no connection, a dropped one, a server
/// shutting down or not yet accepting) or would not have this session (a password refused, no
/// CONNECT right, no free connection slot, no such database), as opposed to failing a
/// statement.
pub fn is_connection_error(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // SQLSTATE class 08 (connection exception) and 57P (the server shutting down or not
        // yet accepting connections); and on Postgres any error of severity FATAL, which ends
        // the session or refuses to start one: 28P01 (password), 42501 (no CONNECT right on the
        // database), 53300 (no connection slot), 3D000 (no such database), … A statement's own
        // failure (a table it may not read, say) is an ERROR and leaves the session alone.
        sqlx::Error::Database(db) => {
            db.code()
                .is_some_and(|c| c.starts_with("08") || c.starts_with("57P"))
                || db.try_downcast_ref::<PgDatabaseError>().is_some_and(|pg| {
                    matches!(pg.severity(), PgSeverity::Fatal | PgSeverity::Panic)
                })
        }
        sqlx::Error::Migrate(m) => match m.as_ref() {
            sqlx::migrate::MigrateError::Execute(e)
            | sqlx::migrate::MigrateError::ExecuteMigration(e, _) => is_connection_error(e),
            _ => false,
        },
        _ => false,
    }
}

/// Whether a start-up failure is the database being out of reach or refusing the connection
/// (worth waiting for: a password set, a database restored or a slot freed mends it, outside this
/// process), rather than something waiting cannot mend.
pub fn is_unreachable(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<sqlx::Error>()
            .is_some_and(is_connection_error)
            || cause
                .downcast_ref::<super::StoreError>()
                .is_some_and(super::StoreError::is_unreachable)
    })
}

static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");
static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");

/// A database family consentry can store its facts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL: `postgres://…` or `postgresql://…`.
    Postgres,
    /// SQLite: `sqlite://path` or `sqlite::memory:`.
    Sqlite,
}

impl Backend {
    /// The backend a database URL names.
    pub fn of_url(url: &str) -> anyhow::Result<Self> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else {
            anyhow::bail!(
                "unsupported database URL {:?}: use postgres://… or sqlite://…",
                redact(url)
            )
        }
    }

    fn migrator(self) -> &'static Migrator {
        match self {
            Backend::Postgres => &POSTGRES_MIGRATIONS,
            Backend::Sqlite => &SQLITE_MIGRATIONS,
        }
    }
}

/// The URL without its password, for messages and logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// SQLite URLs create their file unless told otherwise.
fn normalise(url: &str, backend: Backend) -> String {
    if backend == Backend::Sqlite && !url.contains("mode=") && !url.contains(":memory:") {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}mode=rwc")
    } else {
        url.to_owned()
    }
}

pub(super) fn options(url: &str, backend: Backend) -> anyhow::Result<AnyConnectOptions> {
    let options = AnyConnectOptions::from_str(&normalise(url, backend))
        .map_err(|e| anyhow::anyhow!("invalid database URL {:?}: {e}", redact(url)))?;
    Ok(options.log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_millis(500)))
}

/// Applies pending migrations to the database at `url` (creating an SQLite file if needed).
pub async fn migrate(url: &str) -> anyhow::Result<Backend> {
    sqlx::any::install_default_drivers();
    let backend = Backend::of_url(url)?;
    let mut conn = options(url, backend)?
        .connect()
        .await
        .with_context(|| format!("cannot connect to {}", redact(url)))?;
    if backend == Backend::Sqlite {
        // WAL lets readers proceed while one writer commits; the setting persists in the file.
        sqlx::query("PRAGMA journal_mode = WAL")
            .execute(&mut conn)
            .await?;
    }
    // `run_direct` is sqlx's way around "`Acquire` is not general enough" when this future
    // must be `Send` (it runs in a spawned task while the server waits for its database).
    backend
        .migrator()
        .run_direct(None, &mut conn, false)
        .await
        .with_context(|| format!("migrating {}", redact(url)))?;
    conn.close().await?;
    Ok(backend)
}

/// The schema lacks migrations this build needs: `consentry migrate` has not run yet (with
/// `--migrate=false`, serving waits for it).
#[derive(Debug, thiserror::Error)]
#[error(
    "the database schema is behind this build: {missing} migration(s) not applied yet (run `consentry migrate`; {detail})"
)]
pub struct SchemaBehind {
    /// How many migrations are missing.
    pub missing: usize,
    /// What the database said.
    pub detail: String,
}

/// Checks, without changing anything, that every migration of this build has been applied to
/// the database at `url` (for a runtime role that may not run DDL).
pub async fn check_migrated(url: &str) -> anyhow::Result<Backend> {
    sqlx::any::install_default_drivers();
    let backend = Backend::of_url(url)?;
    let mut conn = options(url, backend)?
        .connect()
        .await
        .with_context(|| format!("cannot connect to {}", redact(url)))?;
    let needed: Vec<i64> = backend
        .migrator()
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .map(|m| m.version)
        .collect();
    // `success` as a number: the Any driver does not decode SQLite's booleans.
    let applied: Result<Vec<(i64, i64)>, sqlx::Error> = sqlx::query_as(
        "SELECT version, CAST(CASE WHEN success THEN 1 ELSE 0 END AS BIGINT) FROM _sqlx_migrations",
    )
    .fetch_all(&mut conn)
    .await;
    let _ = conn.close().await;
    let (applied, detail) = match applied {
        Ok(applied) => (applied, "the others are".to_owned()),
        Err(e) if is_connection_error(&e) => return Err(e.into()),
        // No migrations table yet: nothing has been migrated.
        Err(sqlx::Error::Database(db))
            if db.code().as_deref() == Some("42P01") || db.message().contains("no such table") =>
        {
            (Vec::new(), "no migration has run yet".to_owned())
        }
        // Anything else (no right to read the table, say) is not mended by waiting.
        Err(e) => {
            return Err(anyhow::Error::new(e).context("cannot read the applied migrations"));
        }
    };
    if let Some((version, _)) = applied.iter().find(|(_, success)| *success == 0) {
        anyhow::bail!(
            "migration {version} failed part-way; repair the database and run `consentry migrate` again"
        );
    }
    let missing = needed
        .iter()
        .filter(|v| !applied.iter().any(|(a, _)| a == *v))
        .count();
    if missing > 0 {
        return Err(SchemaBehind { missing, detail }.into());
    }
    Ok(backend)
}

/// The SQLSTATE of the database's error behind a failure, if the database said one.
pub fn sqlstate(e: &anyhow::Error) -> Option<String> {
    e.chain().find_map(|cause| {
        let e = cause
            .downcast_ref::<sqlx::Error>()
            .or_else(|| cause.downcast_ref::<super::DatabaseError>().map(|d| &d.0))?;
        match e {
            sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
            _ => None,
        }
    })
}

/// Whether a start-up failure is a schema that `consentry migrate` has not brought up to date yet.
pub fn is_schema_behind(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| cause.is::<SchemaBehind>())
}

/// Connects to the database at `url`, applying pending migrations first.
pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<SqlStore> {
    let backend = migrate(url).await?;
    let pool: AnyPool = pool_options(max_connections)
        .connect_with(options(url, backend)?)
        .await
        .with_context(|| format!("cannot connect to {}", redact(url)))?;
    Ok(SqlStore::new(pool, backend).with_listener(url))
}

/// A store on the database at `url` that connects on first use: nothing is read, written or
/// migrated yet (see [`migrate`]), so it can be made while the database is down.
pub fn lazy(url: &str, max_connections: u32) -> anyhow::Result<SqlStore> {
    sqlx::any::install_default_drivers();
    let backend = Backend::of_url(url)?;
    let pool: AnyPool = pool_options(max_connections).connect_lazy_with(options(url, backend)?);
    Ok(SqlStore::new(pool, backend).with_listener(url))
}

fn pool_options(max_connections: u32) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(ACQUIRE_TIMEOUT)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn recognises_backends_and_hides_passwords() {
        assert_eq!(
            Backend::of_url("postgres://u@h/db").unwrap(),
            Backend::Postgres
        );
        assert_eq!(
            Backend::of_url("postgresql://u@h/db").unwrap(),
            Backend::Postgres
        );
        assert_eq!(Backend::of_url("sqlite://x.db").unwrap(), Backend::Sqlite);
        assert!(Backend::of_url("mysql://h/db").is_err());
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            normalise("sqlite://x.db", Backend::Sqlite),
            "sqlite://x.db?mode=rwc"
        );
        assert_eq!(
            normalise("sqlite://x.db?mode=ro", Backend::Sqlite),
            "sqlite://x.db?mode=ro"
        );
    }
}
