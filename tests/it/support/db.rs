//! Fresh databases for tests: every test gets a database of its own, on Postgres or SQLite,
//! migrated and empty, and removes it afterwards.
//!
//! * **Postgres**: a new database `consentry_t_<pid>_<n>` on the server named by
//!   `CONSENTRY_TEST_DATABASE_URL` (default [`DEFAULT_POSTGRES_URL`]; the URL's own database is
//!   only used to create and drop the test databases). An unreachable server fails the test
//!   with a message naming the URL; it is never skipped. The first use in a process drops the
//!   `consentry_t_<pid>_*` databases (and `consentry-test-<pid>-*` SQLite directories) left by
//!   processes that are no longer running, so aborted runs do not pile up.
//! * **SQLite**: a new directory `consentry-test-<pid>-<n>` under [`std::env::temp_dir`]
//!   holding `consentry.db`, URL `sqlite://<path>`.
//!
//! Use [`backend_tests!`] to run one `async fn name(db: &TestDb)` on both backends, as
//! `<module>::postgres::name` and `<module>::sqlite::name`, or [`postgres_tests!`] to run it on
//! Postgres only, as `<module>::postgres_only::name`; the database is removed after the body,
//! also when it panics (set `CONSENTRY_TEST_KEEP_DB=1` to keep a failed test's database and
//! print its URL). Tests that need one backend otherwise call [`TestDb::new`] or
//! [`TestDb::sqlite`] / [`TestDb::postgres`] themselves and [`TestDb::cleanup`] at the end.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};

use consentry::store::backend::redact;
use consentry::store::{Backend, SqlStore};
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use tokio::sync::OnceCell;

/// The environment variable naming the Postgres server tests create their databases on.
pub const DATABASE_URL_ENV: &str = "CONSENTRY_TEST_DATABASE_URL";
/// The Postgres server used when [`DATABASE_URL_ENV`] is not set (trust authentication).
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// Set to keep the database of a test that failed (its URL is printed).
pub const KEEP_DB_ENV: &str = "CONSENTRY_TEST_KEEP_DB";

/// The prefix of test database names on Postgres: `consentry_t_<pid>_<n>`.
const PG_PREFIX: &str = "consentry_t_";
/// The prefix of test directories for SQLite: `consentry-test-<pid>-<n>`.
const SQLITE_PREFIX: &str = "consentry-test-";

/// Numbers the databases this process creates.
static COUNTER: AtomicU32 = AtomicU32::new(0);
/// The sweep of leftovers from dead processes, done once per process before the first create.
static SWEPT_POSTGRES: OnceCell<()> = OnceCell::const_new();
static SWEPT_SQLITE: OnceCell<()> = OnceCell::const_new();

/// One test's own database. Open stores on it with [`TestDb::store`]; remove it with
/// [`TestDb::cleanup`] (the [`backend_tests!`] macro does this for you).
#[derive(Debug)]
pub struct TestDb {
    /// The URL to give `consentry::store::connect` (or the server's `--database-url`).
    pub url: String,
    /// Which backend the database is on.
    pub backend: Backend,
    place: Place,
}

/// Where the database lives, to remove it.
#[derive(Debug)]
enum Place {
    /// A database on the server at `admin_url`.
    Postgres { admin_url: String, name: String },
    /// A directory holding the SQLite file.
    Sqlite { dir: PathBuf },
}

/// The Postgres server URL tests use.
pub fn postgres_server_url() -> String {
    std::env::var(DATABASE_URL_ENV).unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned())
}

/// `url` with its database (the path) replaced by `database`, keeping any query string.
pub fn with_database(url: &str, database: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    let authority_end = url[start..]
        .find(['/', '?'])
        .map_or(url.len(), |i| start + i);
    let query = url[authority_end..]
        .find('?')
        .map_or("", |i| &url[authority_end + i..]);
    format!("{}/{database}{query}", &url[..authority_end])
}

/// Whether the process `pid` is running (on this machine's `/proc`).
fn process_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The pid in a name `<prefix><pid><sep><n>`, if it has that form.
fn pid_of(name: &str, prefix: &str, sep: char) -> Option<u32> {
    let rest = name.strip_prefix(prefix)?;
    let (pid, n) = rest.split_once(sep)?;
    n.parse::<u32>().ok()?;
    pid.parse().ok()
}

/// Whether a leftover named for `pid` should go: its process is gone, or it is this process's
/// pid reused (this process sweeps before it creates anything).
fn is_leftover(pid: u32) -> bool {
    pid == std::process::id() || !process_alive(pid)
}

/// An administrative connection to the test server, or a panic naming the URL.
async fn admin_connection(admin_url: &str) -> PgConnection {
    match PgConnection::connect(admin_url).await {
        Ok(conn) => conn,
        Err(e) => panic!(
            "cannot reach the test Postgres server at {} ({e}); start it (e.g. \
             `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`) or point \
             {DATABASE_URL_ENV} at one",
            redact(admin_url)
        ),
    }
}

/// Drops a database, closing its connections first.
async fn drop_database(conn: &mut PgConnection, name: &str) -> Result<(), sqlx::Error> {
    sqlx::query(AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
    )))
    .execute(conn)
    .await
    .map(|_| ())
}

/// Drops the test databases of processes that are no longer running.
async fn sweep_postgres(admin_url: &str) {
    let mut conn = admin_connection(admin_url).await;
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE starts_with(datname, $1)")
            .bind(PG_PREFIX)
            .fetch_all(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("listing databases on {}: {e}", redact(admin_url)));
    for name in names {
        if pid_of(&name, PG_PREFIX, '_').is_some_and(is_leftover) {
            // Another process may be sweeping the same leftover: failures here do not matter.
            let _ = drop_database(&mut conn, &name).await;
        }
    }
    let _ = conn.close().await;
}

/// Removes the SQLite test directories of processes that are no longer running.
fn sweep_sqlite() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if pid_of(name, SQLITE_PREFIX, '-').is_some_and(is_leftover) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

impl TestDb {
    /// A fresh, migrated, empty database on `backend`.
    pub async fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Postgres => TestDb::postgres().await,
            Backend::Sqlite => TestDb::sqlite().await,
        }
    }

    /// A fresh database `consentry_t_<pid>_<n>` on the test Postgres server, migrated.
    pub async fn postgres() -> TestDb {
        let admin_url = postgres_server_url();
        SWEPT_POSTGRES
            .get_or_init(|| sweep_postgres(&admin_url))
            .await;
        let name = format!(
            "{PG_PREFIX}{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut conn = admin_connection(&admin_url).await;
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "creating the test database {name} on {}: {e}",
                    redact(&admin_url)
                )
            });
        let _ = conn.close().await;
        let db = TestDb {
            url: with_database(&admin_url, &name),
            backend: Backend::Postgres,
            place: Place::Postgres { admin_url, name },
        };
        db.migrate().await;
        db
    }

    /// A fresh SQLite file `consentry.db` in a new directory under the temp dir, migrated.
    pub async fn sqlite() -> TestDb {
        SWEPT_SQLITE.get_or_init(|| async { sweep_sqlite() }).await;
        let dir = std::env::temp_dir().join(format!(
            "{SQLITE_PREFIX}{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("creating the test directory {}: {e}", dir.display()));
        let db = TestDb {
            url: format!("sqlite://{}", dir.join("consentry.db").display()),
            backend: Backend::Sqlite,
            place: Place::Sqlite { dir },
        };
        db.migrate().await;
        db
    }

    /// Applies the migrations (what `consentry::store::connect` does first anyway).
    async fn migrate(&self) {
        let backend = consentry::store::migrate(&self.url)
            .await
            .unwrap_or_else(|e| panic!("migrating the test database {}: {e:#}", redact(&self.url)));
        assert_eq!(backend, self.backend);
    }

    /// A new store (its own pool of up to 5 connections) on this database. Call it again after
    /// dropping a store to show that what was written survives a restart.
    pub async fn store(&self) -> SqlStore {
        consentry::store::connect(&self.url, 5)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "connecting to the test database {}: {e:#}",
                    redact(&self.url)
                )
            })
    }

    /// The SQLite file, for an SQLite database.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        match &self.place {
            Place::Sqlite { dir } => Some(dir.join("consentry.db")),
            Place::Postgres { .. } => None,
        }
    }

    /// The name of a Postgres database (panics for SQLite).
    pub fn postgres_name(&self) -> &str {
        match &self.place {
            Place::Postgres { name, .. } => name,
            Place::Sqlite { .. } => panic!("an SQLite test database has no Postgres name"),
        }
    }

    /// Drops a Postgres database underneath whatever is using it (its connections are closed),
    /// failing if it cannot; [`TestDb::cleanup`] then has nothing left to remove.
    pub async fn drop_in_use(&self) {
        let Place::Postgres { admin_url, name } = &self.place else {
            panic!("only a Postgres test database can be dropped in use")
        };
        let mut conn = admin_connection(admin_url).await;
        sqlx::query(AssertSqlSafe(format!(
            "DROP DATABASE \"{name}\" WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await
        .expect("drops the database");
        let _ = conn.close().await;
    }

    /// A backup of a Postgres database as it is now: `pg_dump --format=custom` into `file`.
    pub fn dump(&self, file: &Path) {
        let status = std::process::Command::new("pg_dump")
            .args(["--format=custom", "--file"])
            .arg(file)
            .arg("--dbname")
            .arg(&self.url)
            .status()
            .expect("pg_dump runs (Debian: postgresql-client)");
        assert!(status.success(), "pg_dump of {} failed", redact(&self.url));
    }

    /// Replaces a Postgres database, in use or not, by the backup in `file`: the database is
    /// dropped (its connections closed), created again empty, and the backup restored into it
    /// with `pg_restore`, as an operator restores one.
    pub async fn restore(&self, file: &Path) {
        self.drop_in_use().await;
        let Place::Postgres { admin_url, name } = &self.place else {
            unreachable!("drop_in_use accepts Postgres only")
        };
        let mut conn = admin_connection(admin_url).await;
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await
            .expect("creates the database again");
        let _ = conn.close().await;
        let status = tokio::process::Command::new("pg_restore")
            .args(["--exit-on-error", "--single-transaction", "--dbname"])
            .arg(&self.url)
            .arg(file)
            .status()
            .await
            .expect("pg_restore runs (Debian: postgresql-client)");
        assert!(
            status.success(),
            "pg_restore into {} failed",
            redact(&self.url)
        );
    }

    /// A short label for messages: `postgres` or `sqlite`.
    pub fn label(&self) -> &'static str {
        match self.backend {
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
        }
    }

    /// Removes the database (closing any connections still open to it).
    pub async fn cleanup(self) {
        match &self.place {
            Place::Postgres { admin_url, name } => {
                let mut conn = admin_connection(admin_url).await;
                drop_database(&mut conn, name)
                    .await
                    .unwrap_or_else(|e| panic!("dropping the test database {name}: {e}"));
                let _ = conn.close().await;
            }
            Place::Sqlite { dir } => {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
}

/// A future that catches a panic of the future it wraps, so that a test's database is removed
/// before its panic is passed on (without `tokio::spawn`, so the body need not be `Send`).
pub struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future> CatchUnwind<F> {
    /// Wraps `future`.
    pub fn new(future: F) -> Self {
        Self(Box::pin(future))
    }
}

impl<F: Future> Future for CatchUnwind<F> {
    type Output = std::thread::Result<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.0.as_mut();
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(out)) => Poll::Ready(Ok(out)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

/// Ends a test run by [`backend_tests!`]: removes the database, then passes on the body's
/// panic, if any (keeping the database instead when [`KEEP_DB_ENV`] is set).
pub async fn finish(db: TestDb, outcome: std::thread::Result<()>) {
    match outcome {
        Ok(()) => db.cleanup().await,
        Err(panic) => {
            if std::env::var_os(KEEP_DB_ENV).is_some() {
                eprintln!(
                    "kept the {} test database at {}",
                    db.label(),
                    redact(&db.url)
                );
            } else {
                db.cleanup().await;
            }
            std::panic::resume_unwind(panic)
        }
    }
}

/// Runs each named `async fn name(db: &TestDb)` of the calling module on both backends, as the
/// tokio tests `postgres::name` and `sqlite::name`, each on a fresh database removed afterwards.
///
/// ```ignore
/// async fn tenants_are_created(db: &TestDb) { /* … */ }
/// crate::support::db::backend_tests!(tenants_are_created);
/// ```
macro_rules! backend_tests {
    ($($name:ident),+ $(,)?) => {
        $crate::support::db::backend_tests!(@backend postgres, Postgres, 2, $($name),+);
        $crate::support::db::backend_tests!(@backend sqlite, Sqlite, 2, $($name),+);
    };
    (@backend $module:ident, $backend:ident, $workers:literal, $($name:ident),+) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = $workers)]
                async fn $name() {
                    let db =
                        $crate::support::db::TestDb::new(::consentry::store::Backend::$backend)
                            .await;
                    let outcome =
                        $crate::support::db::CatchUnwind::new(super::$name(&db)).await;
                    $crate::support::db::finish(db, outcome).await;
                }
            )+
        }
    };
}
pub(crate) use backend_tests;

/// Like [`backend_tests!`], for tests that only make sense on Postgres (several instances on
/// one database, a database dropped or cut off underneath a server, the binary on its URL):
/// each runs as the tokio test `postgres_only::name`, with four worker threads.
///
/// ```ignore
/// async fn two_servers_agree(db: &TestDb) { /* … */ }
/// crate::support::db::postgres_tests!(two_servers_agree);
/// ```
macro_rules! postgres_tests {
    ($($name:ident),+ $(,)?) => {
        $crate::support::db::backend_tests!(@backend postgres_only, Postgres, 4, $($name),+);
    };
}
pub(crate) use postgres_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_replace_the_path_and_keep_the_query() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h:1", "x"), "postgres://h:1/x");
        assert_eq!(with_database("postgres://h?a=b", "x"), "postgres://h/x?a=b");
        assert_eq!(pid_of("consentry_t_12_3", PG_PREFIX, '_'), Some(12));
        assert_eq!(pid_of("consentry-test-12-3", SQLITE_PREFIX, '-'), Some(12));
        assert_eq!(pid_of("consentry_t_x_3", PG_PREFIX, '_'), None);
        assert_eq!(pid_of("consentry_t_12", PG_PREFIX, '_'), None);
    }
}
