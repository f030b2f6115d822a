//! Read replicas on a real hot standby (docs/rules.md §9.4): a primary of the test's own with a
//! `pg_basebackup` standby streaming from it (`support::standby`), the binary reading snapshots
//! from the standby with `--database-read-url`. The standby's replay is paused to hold it behind
//! and stopped to take it away; what a caller sees must never be older than the instance's
//! applied revision or the caller's token, and the counters say where each read went.

use std::net::SocketAddr;

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::*;
use crate::support::server::{BinaryServer, eventually, scrape};
use crate::support::standby::Pair;

/// `consentry_replica_reads_total{result}` in a scrape (0 before the first such read).
async fn reads(metrics: SocketAddr, result: &str) -> f64 {
    let body = scrape(metrics).await;
    let needle = format!("consentry_replica_reads_total{{result=\"{result}\"}}");
    body.lines()
        .find(|l| l.starts_with(&needle))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

/// A primary with a standby, and the binary serving the primary with reads on the standby.
struct Replicated {
    pair: Pair,
    server: BinaryServer,
    api: Api,
    metrics: SocketAddr,
}

async fn replicated() -> Replicated {
    let pair = Pair::start(&[]).await;
    let standby = pair.standby_url("postgres");
    let server = BinaryServer::start(
        &pair.primary_url("postgres"),
        &[
            "--metrics-listen",
            "127.0.0.1:0",
            "--database-read-url",
            &standby,
        ],
    )
    .await;
    let api = Api::at(server.addr).await;
    let metrics = server.metrics.expect("metrics are served");
    Replicated {
        pair,
        server,
        api,
        metrics,
    }
}

/// The `acme` world with the CRM app approved (WRITE on `/hr`), replayed on the standby.
async fn acme_replayed(r: &Replicated) {
    acme(&r.api).await;
    r.pair.wait_caught_up().await;
}

/// While the standby's replay is paused, a write's token and a revocation are answered from the
/// primary: a read at the token sees the write, the revoked consent is never ALLOWED, and each
/// read the standby could not serve is counted `behind`. Once replay resumes, reads go to the
/// standby again.
#[tokio::test]
async fn a_paused_standby_never_answers_older_than_the_token_or_the_applied_revision() {
    let r = replicated().await;
    acme_replayed(&r).await;

    // A cold check reads both snapshots from the standby, which has replayed them.
    let q = may("dave", "EDIT_ITEMS", "/hr/team/docs");
    decided(&r.api.decide(q.clone()).await, Reason::Allowed, None);
    let from_standby = reads(r.metrics, "replica").await;
    assert!(from_standby >= 2.0, "{from_standby} replica reads");

    r.pair.pause_replay().await;
    // A user and their right written now are on the primary only; a read at the token sees them.
    r.api.put_user("acme", "frank", &[], None).await;
    let granted = r
        .api
        .grant_right("acme", "frank", "/hr", Right::Write)
        .await;
    let behind_before = reads(r.metrics, "behind").await;
    let frank = CheckAccessRequest {
        consistency: fresh(&granted),
        ..may("frank", "EDIT_ITEMS", "/hr/team/docs")
    };
    decided(&r.api.decide(frank).await, Reason::Allowed, None);
    assert!(
        reads(r.metrics, "behind").await > behind_before,
        "the standby was behind the token and the primary answered"
    );

    // A consent revoked now: the standby still holds it, and is never believed.
    r.api.revoke_consent("acme", "crm").await;
    for _ in 0..5 {
        decided(
            &r.api.decide(q.clone()).await,
            Reason::ConsentRevoked,
            Some("CONSENT"),
        );
    }

    // Replay resumes: cold reads go to the standby again.
    r.pair.resume_replay().await;
    r.pair.wait_caught_up().await;
    let before = reads(r.metrics, "replica").await;
    r.api.put_user("acme", "erin", &[], None).await;
    r.pair.wait_caught_up().await;
    eventually(Duration::from_secs(10), || async {
        let erin = may("erin", "VIEW_ITEMS", "/hr");
        let d = r.api.decide(erin).await;
        assert!(!d.allowed, "erin holds nothing: {d:#?}");
        reads(r.metrics, "replica").await > before
    })
    .await;
    drop(r.server);
}

/// The standby stopped under load: every read goes on from the primary (counted `down`, then
/// skipped while it backs off), health stays SERVING, and once the standby is back, reads return
/// to it within the longest back-off.
#[tokio::test]
async fn a_stopped_standby_leaves_reads_to_the_primary_and_health_serving() {
    let mut r = replicated().await;
    acme_replayed(&r).await;
    for user in ["u1", "u2", "u3", "u4"] {
        r.api.put_user("acme", user, &[], None).await;
        r.api.grant_right("acme", user, "/hr", Right::Read).await;
    }
    r.pair.wait_caught_up().await;

    r.pair.stop_standby().await;
    let down_before = reads(r.metrics, "down").await;
    for user in ["u1", "u2", "u3", "u4"] {
        decided(
            &r.api.decide(may(user, "VIEW_ITEMS", "/hr/x")).await,
            Reason::Allowed,
            None,
        );
    }
    assert!(
        reads(r.metrics, "down").await > down_before,
        "the stopped standby was tried and skipped"
    );
    let channel = connect(r.server.addr).await;
    let status = HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await
        .expect("health answers")
        .into_inner()
        .status();
    assert_eq!(
        status,
        ServingStatus::Serving,
        "a replica never decides health"
    );

    r.pair.start_standby().await;
    r.pair.wait_caught_up().await;
    let before = reads(r.metrics, "replica").await;
    let mut n = 0;
    eventually(Duration::from_secs(15), || {
        n += 1;
        let user = format!("v{n}");
        let api = &r.api;
        async move {
            api.put_user("acme", &user, &[], None).await;
            let d = api.decide(may(&user, "VIEW_ITEMS", "/hr")).await;
            assert!(!d.allowed, "{user} holds nothing: {d:#?}");
            reads(r.metrics, "replica").await > before
        }
    })
    .await;
    drop(r.server);
}

/// A read URL that names a server that is not in recovery (a primary given by mistake) is
/// refused at start, with the reason.
#[tokio::test]
async fn a_read_url_that_is_no_standby_is_refused_at_start() {
    let pair = Pair::start(&[]).await;
    let not_a_standby = pair.primary_url("template1");
    let mut server = BinaryServer::spawn(
        &pair.primary_url("postgres"),
        &["--database-read-url", &not_a_standby],
        None,
    )
    .await;
    let exit = tokio::time::timeout(Duration::from_secs(30), server.child.wait())
        .await
        .expect("the server exits instead of serving")
        .expect("its status");
    // Everything it wrote is read once it has closed stderr.
    let _ = tokio::time::timeout(Duration::from_secs(5), &mut server.reader).await;
    let log = server.stderr.lock().unwrap().join("\n");
    assert!(!exit.success(), "{exit:?}\n{log}");
    assert!(log.contains("not in recovery"), "{log}");
}
