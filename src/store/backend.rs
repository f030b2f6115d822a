//! What differs per backend: recognising the database URL, connecting, and the migration set.
//! Postgres is the production store (shared by many instances); an SQLite file is the embedded
//! default for one process.

use std::borrow::Cow;
use std::str::FromStr;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgDatabaseError, PgSeverity};
use sqlx::{AnyConnection, AnyPool, ConnectOptions, Connection};

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

static POSTGRES_MIGRATIONS: LazyLock<Migrator> = LazyLock::new(|| {
    tolerant(shipped(
        sqlx::migrate!("migrations/postgres"),
        Backend::Postgres,
    ))
});
static SQLITE_MIGRATIONS: LazyLock<Migrator> = LazyLock::new(|| {
    tolerant(shipped(
        sqlx::migrate!("migrations/sqlite"),
        Backend::Sqlite,
    ))
});

/// Migrations whose comments changed after they shipped (their first line cited the rulebook by
/// its former name), with the SHA-384 of the text they shipped with, which every database they
/// ran on recorded. Only comments changed, so what they run is what ran; a test holds that the
/// file with the former name restored hashes to the checksum here.
const SHIPPED_CHECKSUMS: [(Backend, i64, &str); 4] = [
    (
        Backend::Postgres,
        2,
        "dc18b0b7417254d1617c850987362020adc781c4b7340432ec6d78a1a6691a99d9ee0d5bdd3c5d6fa7d17d97a4a5e642",
    ),
    (
        Backend::Postgres,
        3,
        "9f0e3a33074ed99d8d021142607180aed7d8c18dd307c6d7ce4c7754fb217c8655657ba717ddb99eff1aab6d7af78586",
    ),
    (
        Backend::Sqlite,
        2,
        "ade8899b9b0294cf579d4bc6938a209d450fb39be0bd1232ab557efbc05877ab4604e4f62274c8a5107b510ec46be3b8",
    ),
    (
        Backend::Sqlite,
        3,
        "9f0e3a33074ed99d8d021142607180aed7d8c18dd307c6d7ce4c7754fb217c8655657ba717ddb99eff1aab6d7af78586",
    ),
];

/// `migrator` with the checksums of `SHIPPED_CHECKSUMS` for `backend`, so that `migrate`
/// accepts the databases those migrations ran on and records the same on new ones. Any
/// migrator of this project's migration files needs them.
pub fn shipped(mut migrator: Migrator, backend: Backend) -> Migrator {
    for migration in migrator.migrations.to_mut() {
        let pinned = SHIPPED_CHECKSUMS
            .iter()
            .find(|(b, v, _)| *b == backend && *v == migration.version);
        if let Some((_, _, hex)) = pinned {
            migration.checksum = Cow::Owned(from_hex(hex));
        }
    }
    migrator
}

/// The bytes a string of hexadecimal digits spells (two digits a byte; only for the constants
/// above, which a test reads back).
fn from_hex(hex: &str) -> Vec<u8> {
    (0..hex.len() / 2)
        .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
        .collect()
}

/// A migrator that accepts a database a newer release has migrated further: consentry's
/// migrations only add, so this build runs on such a schema (a rollback), and says so (see
/// [`migrate`] and [`check_migrated`]).
fn tolerant(mut migrator: Migrator) -> Migrator {
    migrator.set_ignore_missing(true);
    migrator
}

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

/// SQLite URLs create their file unless told otherwise (`existing` asks not to).
fn normalise(url: &str, backend: Backend, existing: bool) -> String {
    if existing {
        return url.to_owned();
    }
    if backend == Backend::Sqlite && !url.contains("mode=") && !url.contains(":memory:") {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}mode=rwc")
    } else {
        url.to_owned()
    }
}

pub(super) fn options(url: &str, backend: Backend) -> anyhow::Result<AnyConnectOptions> {
    connect_options(url, backend, false)
}

/// Whether `url` parses as a PostgreSQL connection URL (nothing is connected to).
pub fn parses_as_postgres(url: &str) -> anyhow::Result<()> {
    sqlx::any::install_default_drivers();
    options(url, Backend::Postgres).map(drop)
}

/// Options that never create an SQLite file (unless the URL itself asks for `mode=rwc`).
fn existing_options(url: &str, backend: Backend) -> anyhow::Result<AnyConnectOptions> {
    connect_options(url, backend, true)
}

fn connect_options(
    url: &str,
    backend: Backend,
    existing: bool,
) -> anyhow::Result<AnyConnectOptions> {
    let normalised = normalise(url, backend, existing);
    let options = AnyConnectOptions::from_str(&normalised)
        .map_err(|e| anyhow::anyhow!("invalid database URL {:?}: {e}", redact(url)))?;
    if backend == Backend::Sqlite {
        // Made here, private, only where SQLite would make it.
        private_sqlite_file(url, normalised.contains("mode=rwc"))?;
    }
    Ok(options.log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_millis(500)))
}

/// An SQLite database file holds the page-token secret and every fact: when `create` is set
/// and there is none, it is created readable and writable by its owner alone (SQLite gives its
/// `-wal` and `-shm` files the same mode); an existing one that others may read is reported once.
fn private_sqlite_file(url: &str, create: bool) -> anyhow::Result<()> {
    use std::sync::atomic::{AtomicBool, Ordering};
    static REPORTED: AtomicBool = AtomicBool::new(false);
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)
        .map_err(|e| anyhow::anyhow!("invalid database URL {:?}: {e}", redact(url)))?;
    let path = options.get_filename();
    if url.contains(":memory:") || url.contains("mode=memory") || path.as_os_str().is_empty() {
        return Ok(());
    }
    if !create && !path.exists() {
        return Ok(());
    }
    let mut new_file = std::fs::OpenOptions::new();
    new_file.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut new_file, 0o600);
    match new_file.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(path).map_or(0, |m| m.permissions().mode());
                if mode & 0o077 != 0 && !REPORTED.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        file = %path.display(),
                        mode = format_args!("{:o}", mode & 0o777),
                        "the SQLite database file may be read by other users, and it holds the page-token secret; `chmod 600` it (and its -wal and -shm files)"
                    );
                }
            }
            Ok(())
        }
        // Let SQLite say why it cannot open it (a missing directory, a read-only one).
        Err(_) => Ok(()),
    }
}

/// Applies pending migrations to the database at `url` (creating an SQLite file if needed).
///
/// A database that a newer release has migrated further (every migration of this build applied,
/// and later ones it does not know) is left as it is, with a warning naming them: that is a
/// rollback, and consentry's migrations only add. A database that records migrations this build
/// does not know *and* lacks some it has was migrated by another line of releases: refused, with
/// nothing applied. On PostgreSQL the migration history is then made read-only to every role but
/// its owner, so that the runtime role can read it but never change it.
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
    let before = Schema::of(backend, recorded(&mut conn).await?);
    if !before.unknown.is_empty() && !before.pending.is_empty() {
        let _ = conn.close().await;
        anyhow::bail!(
            "{} records migrations this build does not know ({}) and lacks some it has ({}): \
             another line of releases migrated it; nothing was applied",
            redact(url),
            describe(&before.unknown),
            before
                .pending
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    // `run_direct` is sqlx's way around "`Acquire` is not general enough" when this future
    // must be `Send` (it runs in a spawned task while the server waits for its database).
    backend
        .migrator()
        .run_direct(None, &mut conn, false)
        .await
        .with_context(|| format!("migrating {}", redact(url)))?;
    if !before.unknown.is_empty() {
        warn_ahead(url, &before.unknown);
    }
    if backend == Backend::Postgres {
        keep_history_read_only(&mut conn, url).await?;
    }
    conn.close().await?;
    Ok(backend)
}

/// Takes every privilege on the migration history (`_sqlx_migrations`) but SELECT from every
/// role other than its owner. The guide's default privileges give the runtime role INSERT,
/// UPDATE and DELETE on every table the migration role creates, this one included; a runtime
/// role that could delete the history would make the next `consentry migrate` re-run (and fail
/// on) the first migration, and `--migrate=false` instances wait for ever. Reading it stays
/// allowed: [`check_migrated`] needs it. A role that may not revoke is warned about, not
/// refused: the migrations are applied by then.
async fn keep_history_read_only(conn: &mut AnyConnection, url: &str) -> anyhow::Result<()> {
    let grants: Result<Vec<(String, String)>, sqlx::Error> = sqlx::query_as(
        "SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END, \
                string_agg(DISTINCT a.privilege_type, ', ') \
         FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a \
         LEFT JOIN pg_roles r ON r.oid = a.grantee \
         WHERE c.oid = to_regclass('_sqlx_migrations') AND a.grantee <> c.relowner \
           AND a.privilege_type <> 'SELECT' \
         GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(&mut *conn)
    .await;
    let grants = match grants {
        Ok(grants) => grants,
        Err(e) if is_connection_error(&e) => return Err(e.into()),
        Err(e) => {
            tracing::warn!(database = %redact(url), error = %e, "cannot read who may change the migration history");
            return Ok(());
        }
    };
    for (grantee, privileges) in grants {
        // Both come from the catalog: a quoted role name (or PUBLIC) and privilege keywords.
        if !privileges
            .chars()
            .all(|c| c.is_ascii_uppercase() || c == ',' || c == ' ')
        {
            continue;
        }
        let revoke = format!("REVOKE {privileges} ON _sqlx_migrations FROM {grantee}");
        match sqlx::raw_sql(sqlx::AssertSqlSafe(revoke))
            .execute(&mut *conn)
            .await
        {
            Ok(_) => tracing::info!(
                database = %redact(url),
                role = %grantee,
                %privileges,
                "the migration history is read-only to every role but its owner: revoked"
            ),
            Err(e) if is_connection_error(&e) => return Err(e.into()),
            Err(e) => tracing::warn!(
                database = %redact(url),
                role = %grantee,
                %privileges,
                error = %e,
                "cannot take these privileges on the migration history; revoke them as its owner"
            ),
        }
    }
    Ok(())
}

/// A migration the database records (a row of `_sqlx_migrations`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Recorded {
    version: i64,
    description: String,
    success: bool,
}

/// The migrations the database records, read without changing anything; `None` when it has no
/// migration table yet.
async fn recorded(conn: &mut AnyConnection) -> Result<Option<Vec<Recorded>>, sqlx::Error> {
    // `success` as a number: the Any driver does not decode SQLite's booleans.
    let rows: Result<Vec<(i64, String, i64)>, sqlx::Error> = sqlx::query_as(
        "SELECT version, description, CAST(CASE WHEN success THEN 1 ELSE 0 END AS BIGINT) \
         FROM _sqlx_migrations ORDER BY version",
    )
    .fetch_all(conn)
    .await;
    match rows {
        Ok(rows) => Ok(Some(
            rows.into_iter()
                .map(|(version, description, success)| Recorded {
                    version,
                    description,
                    success: success != 0,
                })
                .collect(),
        )),
        // No migrations table yet: nothing has been migrated.
        Err(sqlx::Error::Database(db))
            if db.code().as_deref() == Some("42P01") || db.message().contains("no such table") =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// What the database records against what this build knows.
#[derive(Debug, Default)]
struct Schema {
    /// Whether the database has a migration table at all.
    started: bool,
    /// Migrations of this build not applied yet.
    pending: Vec<i64>,
    /// Recorded migrations this build does not know: a newer release applied them.
    unknown: Vec<Recorded>,
    /// A recorded migration that failed part-way.
    failed: Option<i64>,
}

impl Schema {
    fn of(backend: Backend, recorded: Option<Vec<Recorded>>) -> Schema {
        let started = recorded.is_some();
        let recorded = recorded.unwrap_or_default();
        let known = backend.migrator();
        Schema {
            started,
            pending: known
                .iter()
                .filter(|m| !m.migration_type.is_down_migration())
                .map(|m| m.version)
                .filter(|v| !recorded.iter().any(|r| r.version == *v))
                .collect(),
            unknown: recorded
                .iter()
                .filter(|r| !known.version_exists(r.version))
                .cloned()
                .collect(),
            failed: recorded.iter().find(|r| !r.success).map(|r| r.version),
        }
    }
}

/// Migrations as `version (description)`, comma-separated.
fn describe(migrations: &[Recorded]) -> String {
    migrations
        .iter()
        .map(|m| format!("{} ({})", m.version, m.description))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Says that the database is ahead of this build (a rollback), naming what it does not know.
fn warn_ahead(url: &str, unknown: &[Recorded]) {
    tracing::warn!(
        database = %redact(url),
        unknown = %describe(unknown),
        "the database has migrations this build does not know, applied by a newer release: {}; \
         carrying on, since consentry's migrations only add (a rollback)",
        describe(unknown)
    );
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
/// the database at `url` (for a runtime role that may not run DDL). An SQLite file that does not
/// exist is not created: its schema is behind. Migrations this build does not know (a newer
/// release applied them; this is a rollback) are accepted with a warning naming them.
pub async fn check_migrated(url: &str) -> anyhow::Result<Backend> {
    sqlx::any::install_default_drivers();
    let backend = Backend::of_url(url)?;
    let needed = Schema::of(backend, None).pending.len();
    let mut conn = match existing_options(url, backend)?.connect().await {
        Ok(conn) => conn,
        // SQLITE_CANTOPEN: no file there (yet).
        Err(sqlx::Error::Database(db))
            if backend == Backend::Sqlite && db.code().as_deref() == Some("14") =>
        {
            return Err(SchemaBehind {
                missing: needed,
                detail: "the database file does not exist yet".to_owned(),
            }
            .into());
        }
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!("cannot connect to {}", redact(url))));
        }
    };
    let recorded = recorded(&mut conn).await;
    let _ = conn.close().await;
    let recorded = match recorded {
        Ok(recorded) => recorded,
        Err(e) if is_connection_error(&e) => return Err(e.into()),
        // Anything else (no right to read the table, say) is not mended by waiting.
        Err(e) => {
            return Err(anyhow::Error::new(e).context("cannot read the applied migrations"));
        }
    };
    let schema = Schema::of(backend, recorded);
    if let Some(version) = schema.failed {
        anyhow::bail!(
            "migration {version} failed part-way; repair the database and run `consentry migrate` again"
        );
    }
    if !schema.pending.is_empty() {
        let detail = if schema.started {
            "the others are"
        } else {
            "no migration has run yet"
        };
        return Err(SchemaBehind {
            missing: schema.pending.len(),
            detail: detail.to_owned(),
        }
        .into());
    }
    if !schema.unknown.is_empty() {
        warn_ahead(url, &schema.unknown);
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
    let pool: AnyPool = pool_options(max_connections, ACQUIRE_TIMEOUT)
        .connect_with(options(url, backend)?)
        .await
        .with_context(|| format!("cannot connect to {}", redact(url)))?;
    Ok(SqlStore::new(pool, backend).with_listener(url))
}

/// A store on the database at `url` for the admin commands: checks, changing nothing, that the
/// schema is current ([`check_migrated`]), then connects. It never migrates and never creates a
/// database, so it works as the runtime role and fails, saying to run `consentry migrate`, on a
/// schema that is behind.
pub async fn open(url: &str, max_connections: u32) -> anyhow::Result<SqlStore> {
    let backend = check_migrated(url).await?;
    let pool: AnyPool = pool_options(max_connections, ACQUIRE_TIMEOUT)
        .connect_with(existing_options(url, backend)?)
        .await
        .with_context(|| format!("cannot connect to {}", redact(url)))?;
    Ok(SqlStore::new(pool, backend))
}

/// A store on the database at `url` that connects on first use: nothing is read, written or
/// migrated yet (see [`migrate`]), so it can be made while the database is down.
pub fn lazy(url: &str, max_connections: u32) -> anyhow::Result<SqlStore> {
    sqlx::any::install_default_drivers();
    let backend = Backend::of_url(url)?;
    let pool: AnyPool =
        pool_options(max_connections, ACQUIRE_TIMEOUT).connect_lazy_with(options(url, backend)?);
    Ok(SqlStore::new(pool, backend).with_listener(url))
}

/// How long a pooled connection may sit idle and still be handed out without a ping first.
/// sqlx pings every connection when it is returned, so one reused within this window was
/// answering a moment ago; one idle longer (across a restart, or a proxy's idle cut) is pinged
/// before use. A busy pool so skips a round trip per statement.
pub const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// When a connection was last found broken under a statement, in milliseconds from [`EPOCH`]
/// (0: never). For [`PING_IF_IDLE_FOR`] after that, every pooled connection is pinged before
/// use, however briefly it was idle: what ended one (a restart, a failover) usually ended them
/// all, and the next caller must not meet the next dead one. Process-wide, so that whichever
/// statement meets a broken connection first (a read, a write, a change-log poll) warns every
/// pool, as the error is turned into a `StoreError` (see [`suspect_connections`]).
static SUSPECTED_AT: AtomicU64 = AtomicU64::new(0);

/// The instant [`SUSPECTED_AT`] counts from.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Notes that a pooled connection was just found broken: every connection is pinged before use
/// for the next [`PING_IF_IDLE_FOR`].
pub fn suspect_connections() {
    let since = EPOCH.elapsed().as_millis() as u64;
    // 0 means never, so a raise in the epoch's first millisecond counts as the second.
    SUSPECTED_AT.fetch_max(since.max(1), Ordering::Relaxed);
}

/// Whether a connection was found broken less than [`PING_IF_IDLE_FOR`] ago.
fn connections_suspected() -> bool {
    match SUSPECTED_AT.load(Ordering::Relaxed) {
        0 => false,
        at => {
            let now = EPOCH.elapsed().as_millis() as u64;
            now.saturating_sub(at) < PING_IF_IDLE_FOR.as_millis() as u64
        }
    }
}

/// The pool settings of the primary and of each read replica: `max_connections`, the acquire
/// timeout `acquire_timeout`, and a ping before use only after [`PING_IF_IDLE_FOR`] idle or
/// while connections are suspected ([`suspect_connections`]).
pub(super) fn pool_options(max_connections: u32, acquire_timeout: Duration) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(acquire_timeout)
        .test_before_acquire(false)
        .before_acquire(move |conn, meta| {
            let ping = meta.idle_for >= PING_IF_IDLE_FOR || connections_suspected();
            Box::pin(async move {
                if ping {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Each pinned checksum is the SHA-384 of its file with the rulebook's former name put back:
    /// the citation is all that changed since it shipped.
    #[test]
    fn the_pinned_checksums_are_the_shipped_texts() {
        let files = [
            (
                Backend::Postgres,
                2,
                include_str!("../../migrations/postgres/0002_api_users.sql"),
            ),
            (
                Backend::Postgres,
                3,
                include_str!("../../migrations/postgres/0003_app_rights.sql"),
            ),
            (
                Backend::Sqlite,
                2,
                include_str!("../../migrations/sqlite/0002_api_users.sql"),
            ),
            (
                Backend::Sqlite,
                3,
                include_str!("../../migrations/sqlite/0003_app_rights.sql"),
            ),
        ];
        for (backend, version, text) in files {
            // The former name, spelt so that this file does not cite it.
            let former = text.replacen("(docs/rules.md §8)", concat!("(DESIGN", ".md §8)"), 1);
            assert_ne!(
                former, text,
                "{backend:?} {version} cites docs/rules.md §8 first"
            );
            let shipped = ring::digest::digest(&ring::digest::SHA384, former.as_bytes());
            let migrator = backend.migrator();
            let migration = migrator.iter().find(|m| m.version == version).unwrap();
            assert_eq!(
                &*migration.checksum,
                shipped.as_ref(),
                "{backend:?} {version}"
            );
            // And the migrator really uses the pinned value, not the file's own.
            let own = ring::digest::digest(&ring::digest::SHA384, text.as_bytes());
            assert_ne!(&*migration.checksum, own.as_ref(), "{backend:?} {version}");
        }
    }

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
            normalise("sqlite://x.db", Backend::Sqlite, false),
            "sqlite://x.db?mode=rwc"
        );
        assert_eq!(
            normalise("sqlite://x.db?mode=ro", Backend::Sqlite, false),
            "sqlite://x.db?mode=ro"
        );
        assert_eq!(
            normalise("sqlite://x.db", Backend::Sqlite, true),
            "sqlite://x.db"
        );
    }
}
