//! The read path through database outages (DESIGN.md §9), with real faults: a TCP proxy between
//! the server and PostgreSQL that drops every connection and refuses new ones; a server started
//! while its database is down; and a burst of checks that carry one fresh token.

use std::collections::BTreeMap;

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use super::*;
use crate::support::proxy::Proxy;

postgres_tests!(
    through_an_outage_cache_hits_answer_until_the_bound_and_nothing_else_does,
    a_server_started_while_its_database_is_down_serves_once_it_is_up,
    checks_waiting_for_one_fresh_token_read_the_change_log_once,
);

/// The host and port of the PostgreSQL server the tests use.
fn postgres_addr() -> SocketAddr {
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
async fn serving(health: &mut HealthClient<Channel>) -> Option<bool> {
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
    let mut health = HealthClient::new(channel(server.addr).await);
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
            let s = assert_code(what, api.check(q.clone()).await, Code::Unavailable);
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
            .put_tenant(boot(
                PutTenantRequest {
                    tenant_id: "globex".into(),
                    environment: "production".into(),
                    whitelisting_enabled: false,
                },
                None,
            ))
            .await;
        assert_code("a write", write, Code::Unavailable);
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
        ok(what, api.check(q).await.map(Response::new));
    }
    assert_code(
        beyond.0,
        api.check(beyond.1).await,
        Code::FailedPrecondition,
    );
    server.stop().await;
}

async fn a_server_started_while_its_database_is_down_serves_once_it_is_up(db: &TestDb) {
    let proxy = Proxy::start(postgres_addr()).await;
    proxy.cut();
    let mut server = spawn_unready(&proxy.url(&db.url), &[]).await;
    let api = Api::at(server.addr).await;
    let mut health = HealthClient::new(channel(server.addr).await);
    // It answers at once, and says it cannot serve yet, and why.
    assert_eq!(serving(&mut health).await, Some(false));
    let s = assert_code(
        "a check while starting",
        api.check(may("dave", "READ", "/")).await,
        Code::Unavailable,
    );
    assert!(s.message().contains("starting"), "{}", s.message());
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
    let reader = spawn_unready(
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
        channels.push(channel(reader.addr).await);
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
        let d = ok("a check with the fresh token", call.await.unwrap());
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
