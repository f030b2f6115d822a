//! Failing closed without a store, and the read path through database outages (docs/rules.md §9),
//! with real faults: the database dropped underneath a server; the server's pool cut off while
//! its change listener stays connected; a TCP proxy between the server and PostgreSQL that drops
//! every connection and refuses new ones; a server started while its database is down; and a
//! burst of checks that carry one fresh token.

use std::collections::BTreeMap;
use std::sync::Arc;

use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use super::*;
use crate::support::calls::{Cases, fails};
use crate::support::db::{postgres_server_url, postgres_tests};
use crate::support::proxy::Proxy;
use crate::support::server::{BinaryServer, eventually, scrape, wait_serving};

postgres_tests!(
    without_the_database_checks_fail_closed,
    a_server_cut_off_from_its_pool_stops_answering_from_its_cache,
    through_an_outage_cache_hits_answer_until_the_bound_and_nothing_else_does,
    a_server_started_while_its_database_is_down_serves_once_it_is_up,
    checks_waiting_for_one_fresh_token_read_the_change_log_once,
);

// ---------------------------------------------------------------------------------------------
// Failing closed.

async fn without_the_database_checks_fail_closed(db: &TestDb) {
    let (server, api) = acme_server_with(short_staleness(db)).await;
    let q = may("dave", "EDIT_ITEMS", "/hr/team/docs");
    decided(&api.decide(q.clone()).await, Reason::Allowed, None);
    decided(&api.decide(q.clone()).await, Reason::Allowed, None);
    db.drop_in_use().await;
    let needs_store = [
        CheckAccessRequest {
            consistency: fully(),
            ..q.clone()
        },
        // A user never looked up: a cache miss.
        may("erin", "VIEW_ITEMS", "/hr"),
        CheckAccessRequest {
            tenant_id: "globex".into(),
            ..q.clone()
        },
    ];
    let mut cases = Cases::new("without the database");
    for q in needs_store {
        let what = format!("{q:?} without a database");
        if let Some(message) = cases.check(&what, api.check(q).await, Code::Unavailable, "") {
            cases.expect(
                format!("{what}: no database details leak"),
                !message.contains("consentry_t_"),
                message,
            );
        }
    }
    let batch = api
        .batch(
            BOOTSTRAP_KEY,
            vec![q.clone(), may("erin", "READ", "/")],
            None,
        )
        .await;
    cases.check("a batch with a miss", batch, Code::Unavailable, "");
    let scopes = api
        .scopes(GetAppScopesRequest {
            consistency: fully(),
            ..scopes_of("acme", "crm")
        })
        .await;
    cases.check("GetAppScopes from the store", scopes, Code::Unavailable, "");
    // Knowing it can no longer hear of changes, the instance stops answering from its cache
    // too within the staleness bound (here half a second); it never answers ALLOWED from the
    // store it cannot read.
    let since = Instant::now();
    within_a_second("cached answers stop without a database", since, || async {
        match api.check(q.clone()).await {
            Ok(d) => {
                assert!(d.allowed, "a cached answer is the cached answer");
                false
            }
            Err(s) => {
                assert!(
                    matches!(s.code(), Code::Unavailable | Code::Unauthenticated),
                    "{s:?}"
                );
                s.code() == Code::Unavailable
            }
        }
    })
    .await;
    for i in 1..=5 {
        cases.check(
            format!("still no database, check {i}"),
            api.check(q.clone()).await,
            Code::Unavailable,
            "",
        );
    }
    cases.finish();
    drop(server);
}

/// Cuts the server's pool off from its database while its change listener stays connected (as a
/// partition might), and lets another writer revoke the consent the server has cached as ALLOWED:
/// the server stops answering ALLOWED once its staleness bound (here half a second) has passed.
async fn a_server_cut_off_from_its_pool_stops_answering_from_its_cache(db: &TestDb) {
    use consentry::domain::{
        AppId, Caller, Capabilities, ClientId, TenantBounds, TenantId, Timestamp, UserId,
    };
    use consentry::store::{AppWrites, WriteCtx};
    use sqlx::{Connection, PgConnection};
    let (server, api) = acme_server_with(short_staleness(db)).await;
    let q = may("dave", "EDIT_ITEMS", "/hr/team/docs");
    let name = db.postgres_name();
    let mut admin = PgConnection::connect(&postgres_server_url()).await.unwrap();
    // The listener is connected once a backend of the database last ran LISTEN.
    let listeners = async |admin: &mut PgConnection| -> Vec<i32> {
        sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'LISTEN%'",
        )
        .bind(name)
        .fetch_all(admin)
        .await
        .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while listeners(&mut admin).await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the change listener never connected"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    decided(&api.decide(q.clone()).await, Reason::Allowed, None);
    decided(&api.decide(q.clone()).await, Reason::Allowed, None);
    // Another writer, its one connection open before the cut.
    let writer = consentry::store::connect(&db.url, 1).await.unwrap();
    let writer_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(writer.pool())
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS false"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    let keep = listeners(&mut admin).await;
    assert!(!keep.is_empty());
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND pid <> $2 AND NOT (pid = ANY($3))",
    )
    .bind(name)
    .bind(writer_pid)
    .bind(&keep)
    .execute(&mut admin)
    .await
    .unwrap();
    let ctx = WriteCtx {
        caller: Caller {
            client_id: ClientId::parse("client_id", "elsewhere").unwrap(),
            tenants: TenantBounds::All,
            capabilities: Capabilities::all(),
        },
        acting_user: Some(UserId::parse("user_id", "alice").unwrap()),
        at: Timestamp::now(),
    };
    let tenant = TenantId::parse("tenant_id", "acme").unwrap();
    let app = AppId::parse("app_id", "crm").unwrap();
    writer
        .revoke_consent(&ctx, &tenant, &app)
        .await
        .expect("the other writer revokes");
    let since = Instant::now();
    let outcome = tokio::time::timeout(
        Duration::from_secs(3),
        within_a_second(
            "a cut-off server stops answering ALLOWED",
            since,
            || async {
                match api.check(q.clone()).await {
                    Ok(d) => !d.allowed,
                    Err(s) => s.code() == Code::Unavailable,
                }
            },
        ),
    )
    .await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS true"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    let _ = admin.close().await;
    writer.pool().close().await;
    outcome.expect("the poll ends");
    drop(server);
}

// ---------------------------------------------------------------------------------------------
// Through an outage.

/// The host and port of the PostgreSQL server the tests use.
pub(super) fn postgres_addr() -> SocketAddr {
    let url = postgres_server_url();
    let authority = url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap();
    let host_port = authority.rsplit('@').next().unwrap();
    host_port
        .parse()
        .unwrap_or_else(|_| panic!("{host_port} is not an address"))
}

/// Whether health says SERVING (`None` if it cannot be asked).
pub(super) async fn serving(health: &mut HealthClient<Channel>) -> Option<bool> {
    let request = HealthCheckRequest {
        service: String::new(),
    };
    let status = health.check(request).await.ok()?.into_inner().status;
    Some(status == 1)
}

/// The token one revision past `token`: nothing has been committed there yet.
fn next(token: &str) -> String {
    format!("r{}", rev(token) + 1)
}

async fn through_an_outage_cache_hits_answer_until_the_bound_and_nothing_else_does(db: &TestDb) {
    let proxy = Proxy::start(postgres_addr()).await;
    let mut cfg = config(db);
    cfg.db.database_url = proxy.url(&db.url);
    let bound = Duration::from_secs(2);
    cfg.max_staleness = bound;
    let (server, api) = acme_server_with(cfg).await;
    let written = api.put_user("acme", "erin", &[], None).await;
    let hit = may("dave", "EDIT_ITEMS", "/hr/team/docs");
    decided(&api.decide(hit.clone()).await, Reason::Allowed, None);
    decided(&api.decide(hit.clone()).await, Reason::Allowed, None);
    let mut health = HealthClient::new(connect(server.addr).await);
    assert_eq!(serving(&mut health).await, Some(true));

    proxy.cut();
    let cut = Instant::now();
    let needs_store = [
        (
            "a check of a user never looked up",
            may("erin", "READ", "/"),
        ),
        (
            "a fully consistent check",
            CheckAccessRequest {
                consistency: fully(),
                ..hit.clone()
            },
        ),
        (
            "a token beyond the applied revision",
            CheckAccessRequest {
                consistency: fresh(&next(&written)),
                ..hit.clone()
            },
        ),
    ];
    let (mut allowed_until, mut not_serving_since) = (None, None);
    let mut unavailable_after_the_bound = 0;
    while unavailable_after_the_bound < 5 {
        let since = cut.elapsed();
        assert!(
            since < bound * 4,
            "still answering {since:?} into the outage"
        );
        match api.check(hit.clone()).await {
            Ok(d) => {
                assert!(d.allowed, "a cached answer is the cached answer: {d:?}");
                allowed_until = Some(cut.elapsed());
            }
            Err(s) => {
                assert_eq!(s.code(), Code::Unavailable, "{}", s.message());
                if not_serving_since.is_some() {
                    unavailable_after_the_bound += 1;
                }
            }
        }
        // What needs the store fails at once: it never waits for the request timeout, never
        // answers from a failure.
        for (what, q) in &needs_store {
            let asked = Instant::now();
            let s = api.check(q.clone()).await.expect_err(what);
            assert_eq!(s.code(), Code::Unavailable, "{what}: {}", s.message());
            assert!(
                asked.elapsed() < Duration::from_millis(1500),
                "{what} waited {:?}: {}",
                asked.elapsed(),
                s.message()
            );
        }
        let asked = Instant::now();
        let write = api
            .admin
            .clone()
            .put_tenant(boot(tenant_req("globex", "production", false), None))
            .await;
        fails(write, Code::Unavailable, "");
        assert!(asked.elapsed() < Duration::from_millis(1500));
        if not_serving_since.is_none() && serving(&mut health).await == Some(false) {
            not_serving_since = Some(cut.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let allowed_until = allowed_until.expect("cache hits were answered during the outage");
    let not_serving_since = not_serving_since.unwrap();
    eprintln!(
        "outage: cache hits answered until {allowed_until:?}, health NOT_SERVING from \
         {not_serving_since:?} (bound {bound:?})"
    );
    // The last read of the change log began at most a poll before the cut.
    assert!(
        allowed_until > bound / 2,
        "hits kept answering into the outage: {allowed_until:?}"
    );
    assert!(
        allowed_until < bound + Duration::from_millis(300),
        "no hit is answered past the bound: {allowed_until:?}"
    );
    assert!(
        not_serving_since > bound - Duration::from_millis(700)
            && not_serving_since < bound + Duration::from_millis(700),
        "health turns NOT_SERVING at the bound: {not_serving_since:?}"
    );

    proxy.restore().await;
    let restored = Instant::now();
    eventually(Duration::from_secs(5), || {
        let (api, hit) = (api.clone(), hit.clone());
        async move { api.check(hit).await.is_ok_and(|d| d.allowed) }
    })
    .await;
    let answering = restored.elapsed();
    eventually(Duration::from_secs(5), || {
        let mut health = health.clone();
        async move { serving(&mut health).await == Some(true) }
    })
    .await;
    eprintln!(
        "outage: answering {answering:?} and SERVING {:?} after the database returned",
        restored.elapsed()
    );
    assert!(
        answering < Duration::from_secs(1),
        "answers again within a second: {answering:?}"
    );
    // Everything works again, without a restart; the token from beyond is now known to be from
    // the future.
    let [miss, consistent, beyond] = needs_store;
    for (what, q) in [miss, consistent] {
        api.check(q)
            .await
            .unwrap_or_else(|s| panic!("{what}: {:?}: {}", s.code(), s.message()));
    }
    let s = api.check(beyond.1).await.expect_err(beyond.0);
    assert_eq!(
        s.code(),
        Code::FailedPrecondition,
        "{}: {}",
        beyond.0,
        s.message()
    );
    server.stop().await;
}

async fn a_server_started_while_its_database_is_down_serves_once_it_is_up(db: &TestDb) {
    let proxy = Proxy::start(postgres_addr()).await;
    proxy.cut();
    let mut server = BinaryServer::spawn(&proxy.url(&db.url), &[], Some(SERVICE_LOG)).await;
    let api = Api::at(server.addr).await;
    let mut health = HealthClient::new(connect(server.addr).await);
    // It answers at once, and says it cannot serve yet, and why.
    assert_eq!(serving(&mut health).await, Some(false));
    fails(
        api.check(may("dave", "READ", "/")).await,
        Code::Unavailable,
        "starting",
    );
    // It retries, with backoff, saying why each time.
    eventually(Duration::from_secs(10), || {
        let stderr = server.stderr.clone();
        async move {
            let stderr = stderr.lock().unwrap();
            let tries = stderr
                .iter()
                .filter(|l| l.contains("cannot be reached yet"));
            tries.filter(|l| l.contains("retry_in_ms")).count() >= 3
        }
    })
    .await;
    assert_eq!(serving(&mut health).await, Some(false));

    proxy.restore().await;
    let restored = Instant::now();
    eventually(Duration::from_secs(15), || {
        let mut health = health.clone();
        async move { serving(&mut health).await == Some(true) }
    })
    .await;
    eprintln!(
        "started down: SERVING {:?} after the database came up",
        restored.elapsed()
    );
    acme(&api).await;
    decided(
        &api.decide(may("dave", "EDIT_ITEMS", "/hr/team/docs")).await,
        Reason::Allowed,
        None,
    );
    let pid = server.child.id().expect("running");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(30), server.child.wait())
        .await
        .expect("exits after SIGTERM")
        .unwrap();
    assert!(exit.success(), "{exit:?}");
}

/// The change-log reads a server counted, by cause.
async fn change_log_reads(metrics: SocketAddr) -> BTreeMap<String, u64> {
    scrape(metrics)
        .await
        .lines()
        .filter_map(|l| l.strip_prefix("consentry_change_log_reads_total{cause=\""))
        .filter_map(|l| {
            let (cause, count) = l.split_once("\"} ")?;
            Some((cause.to_owned(), count.trim().parse().ok()?))
        })
        .collect()
}

async fn checks_waiting_for_one_fresh_token_read_the_change_log_once(db: &TestDb) {
    // The reader hears of writes only through tokens here: no listener, a poll far away.
    let reader = BinaryServer::spawn(
        &db.url,
        &[
            "--metrics-listen",
            "127.0.0.1:0",
            "--change-listener",
            "false",
            "--change-poll-interval",
            "60s",
            "--max-staleness",
            "120s",
        ],
        Some(SERVICE_LOG),
    )
    .await;
    wait_serving(reader.addr).await;
    let metrics = reader.metrics.expect("the reader serves metrics");
    // The poll's first read, at start, is done before anything is written.
    eventually(Duration::from_secs(10), || async move {
        change_log_reads(metrics)
            .await
            .get("poll")
            .copied()
            .unwrap_or(0)
            >= 1
    })
    .await;
    let writer = TestServer::start(db).await;
    let written = acme(&Api::at(writer.addr).await).await;
    let before = change_log_reads(metrics).await;

    const CHECKS: usize = 50;
    let mut channels = Vec::new();
    for _ in 0..4 {
        channels.push(connect(reader.addr).await);
    }
    let q = CheckAccessRequest {
        consistency: fresh(&written),
        ..may("dave", "EDIT_ITEMS", "/hr/team/docs")
    };
    let start = Arc::new(tokio::sync::Barrier::new(CHECKS));
    let mut calls = Vec::new();
    for i in 0..CHECKS {
        let mut client = PermissionServiceClient::new(channels[i % channels.len()].clone());
        let (q, start) = (q.clone(), start.clone());
        calls.push(tokio::spawn(async move {
            start.wait().await;
            client.check_access(boot(q, None)).await
        }));
    }
    for call in calls {
        let d = ok(call.await.unwrap());
        decided(&d, Reason::Allowed, None);
        assert!(rev(&d.checked_at) >= rev(&written), "{d:?}");
    }
    let after = change_log_reads(metrics).await;
    let delta = |cause: &str| {
        after.get(cause).copied().unwrap_or(0) - before.get(cause).copied().unwrap_or(0)
    };
    eprintln!("change-log reads before {before:?}, after {after:?}");
    assert_eq!(delta("poll"), 0, "no poll ran meanwhile: {after:?}");
    assert_eq!(delta("token"), 1, "{CHECKS} checks, one read: {after:?}");
    assert_eq!(
        ["notify", "read", "write"].map(delta),
        [0, 0, 0],
        "nothing else read the log: {after:?}"
    );
    writer.stop().await;
}
