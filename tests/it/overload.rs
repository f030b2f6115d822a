//! Overload, as a bounded loopback load test (127.0.0.1 only, a fixed number of calls): beyond
//! `--max-concurrent-requests` calls are shed at once with `RESOURCE_EXHAUSTED`, store-bound ones
//! included; health checks are never shed; the slots come back when the load ends; and a burst
//! of thousands of calls leaves the process's memory bounded.
//!
//! The store-bound calls (`fully_consistent` CheckAccess, ListAuditEvents) are made slow by a
//! real fault: the database answers through a proxy that holds back everything it sends. A
//! served call then takes at least that delay, so the limit is reached by a handful of callers.
//! Codes and counts are asserted; latencies are printed, and compared only with the delay that
//! every served call waits by construction.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use consentry::proto::consistency::Requirement;
use consentry::proto::{CheckAccessRequest, Consistency, ListAuditEventsRequest};
use tokio::task::JoinSet;
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use crate::support::calls::boot;
use crate::support::db::{TestDb, postgres_server_url};
use crate::support::proxy::Proxy;
use crate::support::server::{BinaryServer, TestServer, config, connect};

/// The concurrency limit of every server here: small, so a few slow calls reach it.
const LIMIT: usize = 4;
/// How long the database's every reply is held back while the load runs.
const DB_DELAY: Duration = Duration::from_millis(100);

/// Where the test PostgreSQL listens (the proxy's upstream).
fn postgres_addr() -> SocketAddr {
    let url = postgres_server_url();
    let authority = url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap();
    authority.rsplit('@').next().unwrap().parse().unwrap()
}

/// The `n`th store-bound call: a fully consistent CheckAccess (always read from the store) or a
/// page of audit events (always a query), alternately. Its code and how long it took.
async fn store_bound(channel: Channel, n: usize) -> (Code, Duration) {
    use consentry::proto::admin_service_client::AdminServiceClient;
    use consentry::proto::permission_service_client::PermissionServiceClient;
    let started = Instant::now();
    let result = if n.is_multiple_of(2) {
        let check = CheckAccessRequest {
            tenant_id: format!("load-{n}"),
            app_id: "app".into(),
            user_id: "u".into(),
            consistency: Some(Consistency {
                requirement: Some(Requirement::FullyConsistent(true)),
            }),
            ..Default::default()
        };
        PermissionServiceClient::new(channel)
            .check_access(boot(check, None))
            .await
            .map(drop)
    } else {
        AdminServiceClient::new(channel)
            .list_audit_events(boot(ListAuditEventsRequest::default(), None))
            .await
            .map(drop)
    };
    let code = result.err().map_or(Code::Ok, |s| s.code());
    (code, started.elapsed())
}

/// `workers` callers over `channels`, each making store-bound calls one after another until
/// `calls` have been made in all: every call's code and latency.
async fn load(channels: &[Channel], workers: usize, calls: usize) -> Vec<(Code, Duration)> {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut set = JoinSet::new();
    for w in 0..workers {
        let (channel, next) = (channels[w % channels.len()].clone(), next.clone());
        set.spawn(async move {
            let mut answers = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= calls {
                    return answers;
                }
                answers.push(store_bound(channel.clone(), n).await);
            }
        });
    }
    let mut answers = Vec::new();
    while let Some(done) = set.join_next().await {
        answers.extend(done.unwrap());
    }
    answers
}

/// Asks health at `addr` over and over until `stop` is set: every answer (`true`: SERVING).
fn watch_health(channel: Channel, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<Vec<bool>> {
    tokio::spawn(async move {
        let mut health = HealthClient::new(channel);
        let mut answers = Vec::new();
        let mut pace = tokio::time::interval(Duration::from_millis(5));
        while !stop.load(Ordering::Relaxed) {
            pace.tick().await;
            let answer = health
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await;
            answers.push(matches!(answer, Ok(r) if r.get_ref().status == 1));
        }
        answers
    })
}

/// The median of `durations` (which must not be empty).
fn median(durations: &mut [Duration]) -> Duration {
    durations.sort();
    durations[durations.len() / 2]
}

/// What a load came to: (served, shed) latencies; fails on any code but OK and
/// RESOURCE_EXHAUSTED.
fn tally(answers: &[(Code, Duration)]) -> (Vec<Duration>, Vec<Duration>) {
    let (mut served, mut shed) = (Vec::new(), Vec::new());
    for (code, took) in answers {
        match code {
            Code::Ok => served.push(*took),
            Code::ResourceExhausted => shed.push(*took),
            other => panic!("a call under load was answered {other:?} after {took:?}"),
        }
    }
    (served, shed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_bound_calls_beyond_the_limit_are_shed_fast_and_health_never_is() {
    let db = TestDb::postgres().await;
    let proxy = Proxy::start(postgres_addr()).await;
    let mut cfg = config(&db);
    cfg.db.database_url = proxy.url(&db.url);
    cfg.max_concurrent_requests = LIMIT;
    cfg.request_timeout_ms = 4_000;
    // Enough connections that no call under the limit waits for one (nor fails to get one).
    cfg.db_max_connections = 16;
    let server = TestServer::start_with(cfg).await;
    let channels = channels_to(server.addr, 4).await;
    // Every call fits while the database is quick and the callers are few; this also opens the
    // pool's connections before the database turns slow.
    let warm = load(&channels, LIMIT, 4 * LIMIT).await;
    assert!(warm.iter().all(|(code, _)| *code == Code::Ok), "{warm:?}");

    proxy.delay_replies(DB_DELAY);
    let stop = Arc::new(AtomicBool::new(false));
    let health = watch_health(connect(server.addr).await, stop.clone());
    let answers = load(&channels, 32, 1_000).await;
    stop.store(true, Ordering::Relaxed);
    let health = health.await.unwrap();
    proxy.delay_replies(Duration::ZERO);

    let (mut served, mut shed) = tally(&answers);
    assert!(!shed.is_empty(), "nothing was shed: {answers:?}");
    assert!(!served.is_empty(), "nothing was served: {answers:?}");
    assert!(!health.is_empty(), "health was never asked");
    assert!(
        health.iter().all(|&serving| serving),
        "health was not always SERVING under load: {health:?}"
    );
    let (served_median, shed_median) = (median(&mut served), median(&mut shed));
    eprintln!(
        "overload (limit {LIMIT}, database delay {DB_DELAY:?}): {} served, median {served_median:?} \
         (max {:?}); {} shed, median {shed_median:?} (max {:?}); {} health checks, all SERVING",
        served.len(),
        served.last().unwrap(),
        shed.len(),
        shed.last().unwrap(),
        health.len(),
    );
    // Every served call waited on the database at least once, so at least the delay; a shed one
    // never reached a handler.
    assert!(served[0] >= DB_DELAY, "served in {:?}", served[0]);
    assert!(
        shed_median < DB_DELAY,
        "shed calls took {shed_median:?} (median), not less than a served call's floor"
    );

    // The load over, every slot is free again: as many calls as the limit all run at once.
    let after = load(&channels, LIMIT, LIMIT).await;
    assert!(after.iter().all(|(code, _)| *code == Code::Ok), "{after:?}");
    server.stop().await;
    db.cleanup().await;
}

/// `n` channels (one HTTP/2 connection each) to `addr`.
async fn channels_to(addr: SocketAddr, n: usize) -> Vec<Channel> {
    let mut channels = Vec::new();
    for _ in 0..n {
        channels.push(connect(addr).await);
    }
    channels
}

/// A process's resident set (`VmRSS`) or its peak (`VmHWM`), in KiB.
fn memory_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|kib| kib.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// How many calls one burst sends at once.
const BURST: usize = 2_000;

/// [`BURST`] store-bound calls at once (a spawned task each, spread over `channels`), with
/// health asked all the while at `addr`: how many were served and how many shed. Fails on any
/// other code, if none is shed or none served, or if health is ever not SERVING.
async fn burst(channels: &[Channel], addr: SocketAddr) -> BurstOutcome {
    let stop = Arc::new(AtomicBool::new(false));
    let health = watch_health(connect(addr).await, stop.clone());
    let mut set = JoinSet::new();
    for n in 0..BURST {
        set.spawn(store_bound(channels[n % channels.len()].clone(), n));
    }
    let mut answers = Vec::with_capacity(BURST);
    while let Some(answer) = set.join_next().await {
        answers.push(answer.unwrap());
    }
    stop.store(true, Ordering::Relaxed);
    let health = health.await.unwrap();
    let (served, shed) = tally(&answers);
    assert_eq!(answers.len(), BURST);
    assert!(!shed.is_empty() && !served.is_empty(), "{answers:?}");
    assert!(health.iter().all(|&serving| serving), "{health:?}");
    BurstOutcome {
        served: served.len(),
        shed: shed.len(),
    }
}

/// What a burst came to.
struct BurstOutcome {
    served: usize,
    shed: usize,
}

impl std::fmt::Display for BurstOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "({}, {})", self.served, self.shed)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_two_thousand_calls_is_shed_and_memory_stays_bounded() {
    // Generous: a debug build, and the allocator keeps what it was given.
    const GROWTH_BOUND_KIB: u64 = 64 * 1024;
    let db = TestDb::postgres().await;
    let proxy = Proxy::start(postgres_addr()).await;
    let limit = LIMIT.to_string();
    let server = BinaryServer::start(
        &proxy.url(&db.url),
        &[
            "--max-concurrent-requests",
            &limit,
            "--request-timeout-ms",
            "4000",
        ],
    )
    .await;
    let pid = server.child.id().unwrap();
    let channels = channels_to(server.addr, 8).await;
    // Warmed up: the pool's connections and the clients' first calls are not counted as growth.
    let warm = load(&channels, LIMIT, 8 * LIMIT).await;
    assert!(warm.iter().all(|(code, _)| *code == Code::Ok), "{warm:?}");
    let before = memory_kib(pid, "VmRSS");

    // Two bursts: the first shows how far one grows the process, the second that a burst
    // leaves nothing behind to grow on (a leak of 16 KiB per call would add 32 MiB).
    proxy.delay_replies(DB_DELAY);
    let first = burst(&channels, server.addr).await;
    let after_first = memory_kib(pid, "VmHWM");
    let second = burst(&channels, server.addr).await;
    proxy.delay_replies(Duration::ZERO);
    // The peak while the bursts ran, and what is left after them.
    let (peak, after) = (memory_kib(pid, "VmHWM"), memory_kib(pid, "VmRSS"));
    eprintln!(
        "bursts of {BURST} (limit {LIMIT}): {first} and {second} (served, shed); RSS {before} \
         KiB before, peak {after_first} KiB after the first, {peak} KiB after the second, \
         {after} KiB at the end"
    );
    assert!(
        peak.saturating_sub(before) < GROWTH_BOUND_KIB,
        "RSS grew from {before} KiB to a peak of {peak} KiB"
    );
    assert!(
        peak.saturating_sub(after_first) < GROWTH_BOUND_KIB / 2,
        "a second burst grew the peak RSS from {after_first} KiB to {peak} KiB"
    );
    server.terminate().await;
    db.cleanup().await;
}
