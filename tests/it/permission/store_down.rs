//! Every failure to read the change log is an outage (docs/rules.md §9): a database that refuses the
//! server's connections counts as unreachable just as one that cannot be reached. Each cause is
//! made for real, on a PostgreSQL cluster of the test's own (the shared test server must not
//! have its passwords changed or its connection slots exhausted): CONNECT revoked, the password
//! changed, `max_connections` exhausted by held connections, the database dropped. The server
//! (the binary, connected as a role with a password) then says so: `consentry_store_up` 0 within
//! a poll and the one-second wait for a connection, a warning naming the database's reason and
//! SQLSTATE (never the URL or a password), checks `UNAVAILABLE` (cached answers only within
//! `--max-staleness`, never `ALLOWED` after it), health NOT_SERVING past the bound; and it
//! recovers by itself once the fault is undone. A server started while its password is wrong or
//! its database does not exist waits for them, saying why, instead of exiting.

use std::path::Path;

use sqlx::{AssertSqlSafe, Connection, PgConnection};
use tonic::Code;
use tonic_health::pb::health_client::HealthClient;

use super::outage::serving;
use super::*;
use crate::support::cluster::{Cluster, random_hex};
use crate::support::dir::TempDir;
use crate::support::server::{BinaryServer, eventually, scrape, wait_serving};

/// The role the server connects as.
const ROLE: &str = "consentry_app";
/// Its database.
const DATABASE: &str = "consentry";
/// The server's change-log poll (the default) and staleness bound.
const POLL: Duration = Duration::from_millis(250);
const BOUND: Duration = Duration::from_secs(1);
/// Room for scheduling on a loaded machine, on top of what the server itself promises.
const SLACK: Duration = Duration::from_millis(750);

/// One server on a cluster of its own, with the `acme` world written and a check cached.
struct Setup {
    cluster: Cluster,
    admin: PgConnection,
    password: String,
    server: BinaryServer,
    api: Api,
    health: HealthClient<Channel>,
    metrics: SocketAddr,
}

/// A question answered ALLOWED from the cache once [`Setup::start`] is done.
fn cached_check() -> CheckAccessRequest {
    may("dave", "EDIT_ITEMS", "/hr/team/docs")
}

/// A question about a user never looked up: a cache miss.
fn missed_check() -> CheckAccessRequest {
    may("erin", "READ", "/")
}

/// A password no log line may show: random, so that it cannot occur by chance.
fn secret(what: &str) -> String {
    format!("{what}{}", random_hex())
}

/// Runs each statement on `conn`, failing the test with the statement that failed.
async fn exec(conn: &mut PgConnection, statements: &[&str]) {
    for statement in statements {
        sqlx::raw_sql(AssertSqlSafe(statement.to_string()))
            .execute(&mut *conn)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
}

/// Ends every session of the server's role (its pool and its change listener).
async fn terminate_server_sessions(admin: &mut PgConnection) -> u64 {
    sqlx::query_scalar::<_, i64>(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = $1",
    )
    .bind(ROLE)
    .fetch_one(admin)
    .await
    .unwrap() as u64
}

/// `consentry_store_up` as the server's metrics say it now.
async fn store_up(metrics: SocketAddr) -> Option<f64> {
    scrape(metrics)
        .await
        .lines()
        .find_map(|l| l.strip_prefix("consentry_store_up "))
        .and_then(|v| v.trim().parse().ok())
}

impl Setup {
    /// A cluster with few connection slots, the role and its database, and the binary on it.
    async fn start() -> Setup {
        let cluster = Cluster::start(&[
            ("max_connections", "12"),
            ("superuser_reserved_connections", "1"),
        ])
        .await;
        let mut admin = cluster.admin().await;
        let password = secret("pw");
        exec(
            &mut admin,
            &[
                &format!("CREATE ROLE {ROLE} LOGIN PASSWORD '{password}'"),
                &format!("CREATE DATABASE {DATABASE} OWNER {ROLE}"),
                // Only the role may connect (its owner's right), so that revoking it refuses it.
                &format!("REVOKE CONNECT ON DATABASE {DATABASE} FROM PUBLIC"),
            ],
        )
        .await;
        let server = spawn(&cluster.url(ROLE, &password, DATABASE)).await;
        wait_serving(server.addr).await;
        let api = Api::at(server.addr).await;
        acme(&api).await;
        decided(&api.decide(cached_check()).await, Reason::Allowed, None);
        decided(&api.decide(cached_check()).await, Reason::Allowed, None);
        let health = HealthClient::new(connect(server.addr).await);
        let metrics = server.metrics.expect("the server serves metrics");
        assert_eq!(store_up(metrics).await, Some(1.0));
        Setup {
            cluster,
            admin,
            password,
            server,
            api,
            health,
            metrics,
        }
    }

    /// The server's stderr so far.
    fn stderr(&self) -> Vec<String> {
        self.server.stderr.lock().unwrap().clone()
    }

    /// What the fault made `since` must show: `consentry_store_up` 0 within a poll and the wait
    /// for a connection; a warning naming the cause (every one of `cause`) without the URL or a
    /// password; the cached check ALLOWED only within the staleness bound and `UNAVAILABLE`
    /// otherwise, a miss `UNAVAILABLE`; health NOT_SERVING past the bound.
    async fn is_down(&mut self, since: Instant, cause: &[&str], secrets: &[&str]) {
        let mut down_at = None;
        let mut not_serving_at = None;
        let mut unavailable_after = 0;
        while unavailable_after < 3 || down_at.is_none() {
            let elapsed = since.elapsed();
            assert!(
                elapsed < BOUND + POLL + Duration::from_secs(5),
                "still not down {elapsed:?} into the fault (store_up at {down_at:?}, \
                 NOT_SERVING at {not_serving_at:?}); the server said:\n{}",
                self.stderr().join("\n")
            );
            if down_at.is_none() && store_up(self.metrics).await == Some(0.0) {
                down_at = Some(since.elapsed());
            }
            if not_serving_at.is_none() && serving(&mut self.health).await == Some(false) {
                not_serving_at = Some(since.elapsed());
            }
            match self.api.check(cached_check()).await {
                Ok(d) => {
                    let at = since.elapsed();
                    assert!(d.allowed, "a cached answer is the cached answer: {d:?}");
                    assert!(
                        at < BOUND + SLACK,
                        "ALLOWED {at:?} into the fault, past the {BOUND:?} bound"
                    );
                    assert!(not_serving_at.is_none(), "ALLOWED after NOT_SERVING");
                }
                Err(s) => {
                    assert_eq!(s.code(), Code::Unavailable, "{}", s.message());
                    if not_serving_at.is_some() {
                        unavailable_after += 1;
                    }
                }
            }
            if down_at.is_some() {
                let s = self.api.check(missed_check()).await.expect_err("a miss");
                assert_eq!(s.code(), Code::Unavailable, "a miss: {}", s.message());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let down_at = down_at.unwrap_or_else(|| {
            panic!(
                "consentry_store_up never turned 0; the server said:\n{}",
                self.stderr().join("\n")
            )
        });
        let not_serving_at = not_serving_at.unwrap();
        eprintln!(
            "store down ({}): store_up 0 at {down_at:?}, NOT_SERVING at {not_serving_at:?}",
            cause.join(", ")
        );
        assert!(
            down_at < POLL + Duration::from_secs(1) + SLACK,
            "consentry_store_up turned 0 only {down_at:?} into the fault"
        );
        assert!(
            not_serving_at > BOUND - POLL - SLACK,
            "NOT_SERVING before the bound: {not_serving_at:?}"
        );
        // The warning may follow the metric (a wait that timed out is explained first).
        let names_it =
            |l: &String| l.contains("unreachable") && cause.iter().all(|c| l.contains(c));
        let deadline = Instant::now() + Duration::from_secs(3);
        let said = loop {
            if let Some(said) = self.stderr().into_iter().find(names_it) {
                break said;
            }
            assert!(
                Instant::now() < deadline,
                "no warning names the cause ({cause:?}); the server said:\n{}",
                self.stderr().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let stderr = self.stderr();
        eprintln!("the server said: {said}");
        assert!(said.contains("WARN"), "{said}");
        assert!(
            !said.contains("postgres://"),
            "the warning shows the URL: {said}"
        );
        let mut secrets = secrets.to_vec();
        secrets.push(&self.password);
        for line in &stderr {
            for secret in &secrets {
                assert!(
                    !line.contains(secret),
                    "a log line shows a password: {line}"
                );
            }
        }
    }

    /// The fault undone, the server recovers by itself: store_up 1, SERVING, the cached check
    /// ALLOWED and a miss answered.
    async fn recovers(&mut self) {
        let undone = Instant::now();
        let (api, metrics) = (self.api.clone(), self.metrics);
        let health = self.health.clone();
        eventually(Duration::from_secs(10), || {
            let (api, mut health) = (api.clone(), health.clone());
            async move {
                store_up(metrics).await == Some(1.0)
                    && serving(&mut health).await == Some(true)
                    && api.check(cached_check()).await.is_ok_and(|d| d.allowed)
            }
        })
        .await;
        eprintln!(
            "store back: serving {:?} after the fault was undone",
            undone.elapsed()
        );
        let answer = self.api.check(missed_check()).await;
        assert!(answer.is_ok(), "a miss after recovery: {answer:?}");
        assert!(
            self.stderr().iter().any(|l| l.contains("reachable again")),
            "the server says the store is back"
        );
    }
}

/// The binary on `url`, serving metrics, with a short staleness bound and a small pool.
async fn spawn(url: &str) -> BinaryServer {
    BinaryServer::spawn(
        url,
        &[
            "--metrics-listen",
            "127.0.0.1:0",
            "--max-staleness",
            "1s",
            "--change-poll-interval",
            "250ms",
            "--db-max-connections",
            "3",
        ],
        Some(SERVICE_LOG),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_revoked_is_the_store_down() {
    let mut s = Setup::start().await;
    exec(
        &mut s.admin,
        &[&format!(
            "REVOKE CONNECT ON DATABASE {DATABASE} FROM {ROLE}"
        )],
    )
    .await;
    terminate_server_sessions(&mut s.admin).await;
    let since = Instant::now();
    s.is_down(since, &["42501", "permission denied for database"], &[])
        .await;
    exec(
        &mut s.admin,
        &[&format!("GRANT CONNECT ON DATABASE {DATABASE} TO {ROLE}")],
    )
    .await;
    s.recovers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_password_is_the_store_down() {
    let mut s = Setup::start().await;
    let other = secret("other");
    exec(
        &mut s.admin,
        &[&format!("ALTER ROLE {ROLE} PASSWORD '{other}'")],
    )
    .await;
    terminate_server_sessions(&mut s.admin).await;
    let since = Instant::now();
    s.is_down(
        since,
        &["28P01", "password authentication failed"],
        &[&other],
    )
    .await;
    let password = s.password.clone();
    exec(
        &mut s.admin,
        &[&format!("ALTER ROLE {ROLE} PASSWORD '{password}'")],
    )
    .await;
    s.recovers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_connection_slot_is_the_store_down() {
    let mut s = Setup::start().await;
    let hog_password = secret("hog");
    exec(
        &mut s.admin,
        &[&format!("CREATE ROLE hog LOGIN PASSWORD '{hog_password}'")],
    )
    .await;
    let hog_url = s.cluster.url("hog", &hog_password, "postgres");
    // Every slot held (by another role), and none of the server's sessions left: slots its
    // sessions free are taken at once, until none is left to the server.
    let mut hogs = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "the slots were never all held");
        match PgConnection::connect(&hog_url).await {
            Ok(conn) => hogs.push(conn),
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("53300") => {
                if terminate_server_sessions(&mut s.admin).await == 0 {
                    break;
                }
            }
            Err(e) => panic!("holding a connection: {e}"),
        }
    }
    let since = Instant::now();
    eprintln!("{} connections held", hogs.len());
    s.is_down(since, &["53300"], &[&hog_password]).await;
    for hog in hogs {
        let _ = hog.close().await;
    }
    s.recovers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_database_is_the_store_down() {
    let mut s = Setup::start().await;
    let dir = TempDir::new("store-down");
    let backup = dir.0.join("consentry.dump");
    let database_url = s.cluster.superuser_url(DATABASE);
    pg_tool(
        &s.cluster,
        "pg_dump",
        &["--format=custom", "--file"],
        &backup,
        &database_url,
    )
    .await;
    exec(
        &mut s.admin,
        &[&format!("DROP DATABASE {DATABASE} WITH (FORCE)")],
    )
    .await;
    let since = Instant::now();
    s.is_down(since, &["3D000", "does not exist"], &[]).await;
    // Restored as an operator restores a backup.
    exec(
        &mut s.admin,
        &[&format!("CREATE DATABASE {DATABASE} OWNER {ROLE}")],
    )
    .await;
    pg_tool(
        &s.cluster,
        "pg_restore",
        &["--exit-on-error", "--single-transaction"],
        &backup,
        &database_url,
    )
    .await;
    s.recovers().await;
}

/// Runs `pg_dump` or `pg_restore` of the cluster's version with `args`, `file` and the URL.
async fn pg_tool(cluster: &Cluster, tool: &str, args: &[&str], file: &Path, url: &str) {
    let mut command = tokio::process::Command::new(cluster.program(tool));
    command.args(args);
    if tool == "pg_dump" {
        command.arg(file).arg("--dbname").arg(url);
    } else {
        command.arg("--dbname").arg(url).arg(file);
    }
    let out = tokio::time::timeout(Duration::from_secs(30), command.output())
        .await
        .expect("within 30 s")
        .unwrap_or_else(|e| panic!("{tool} runs: {e}"));
    assert!(
        out.status.success(),
        "{tool}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A server started while its role's password is not the one it has, then while its database
/// does not exist, waits for each (NOT_SERVING, saying why, retrying), and serves once both are
/// put right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_started_with_a_wrong_password_or_no_database_waits_for_them() {
    let cluster = Cluster::start(&[]).await;
    let mut admin = cluster.admin().await;
    let (old, new) = (secret("old"), secret("new"));
    exec(
        &mut admin,
        &[&format!("CREATE ROLE {ROLE} LOGIN PASSWORD '{old}'")],
    )
    .await;
    // Started with the new password before the role has it (a rotation half done).
    let mut server = spawn(&cluster.url(ROLE, &new, DATABASE)).await;
    let mut health = HealthClient::new(connect(server.addr).await);
    retries_while(&mut server, &["password authentication failed", "28P01"]).await;
    assert_eq!(serving(&mut health).await, Some(false));
    exec(
        &mut admin,
        &[&format!("ALTER ROLE {ROLE} PASSWORD '{new}'")],
    )
    .await;
    retries_while(&mut server, &["does not exist", "3D000"]).await;
    assert_eq!(serving(&mut health).await, Some(false));
    exec(
        &mut admin,
        &[&format!("CREATE DATABASE {DATABASE} OWNER {ROLE}")],
    )
    .await;
    eventually(Duration::from_secs(15), || {
        let mut health = health.clone();
        async move { serving(&mut health).await == Some(true) }
    })
    .await;
    let api = Api::at(server.addr).await;
    acme(&api).await;
    decided(&api.decide(cached_check()).await, Reason::Allowed, None);
    for line in server.stderr.lock().unwrap().iter() {
        assert!(
            !line.contains(&old) && !line.contains(&new),
            "a log line shows a password: {line}"
        );
    }
    let exit = server.terminate().await;
    assert!(exit.success(), "{exit:?}");
}

/// Waits until the server has said twice that it retries because of `cause` (every one of
/// these), failing if it exits instead.
async fn retries_while(server: &mut BinaryServer, cause: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let retries: Vec<String> = server
            .stderr
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("retry_in_ms") && cause.iter().all(|c| l.contains(c)))
            .cloned()
            .collect();
        if retries.len() >= 2 {
            eprintln!("the server said: {}", retries[1]);
            return;
        }
        if let Some(exit) = server.child.try_wait().unwrap() {
            panic!(
                "the server exited ({exit}) instead of waiting while {cause:?}:\n{}",
                server.stderr.lock().unwrap().join("\n")
            );
        }
        assert!(
            Instant::now() < deadline,
            "the server did not retry twice while {cause:?}:\n{}",
            server.stderr.lock().unwrap().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
