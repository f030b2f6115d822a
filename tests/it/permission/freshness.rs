//! The freshness contract of docs/rules.md §2 across instances: a token makes the first read fresh,
//! without one a read is fresh within a second, in two processes and two in-process servers on
//! one database; repeated checks are cache hits; a revoked consent is never allowed once its
//! token is presented; the instance that wrote reads its write without a token.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tonic::Code;

use super::*;
use crate::support::calls::fails;
use crate::support::db::{backend_tests, postgres_tests};
use crate::support::server::{BinaryServer, scrape};

backend_tests!(the_instance_that_wrote_reads_its_write_without_a_token);

postgres_tests!(
    two_processes_on_one_database_agree_within_a_second,
    two_in_process_servers_agree_within_a_second,
    repeated_checks_are_cache_hits,
    a_revoked_consent_is_never_allowed_once_its_token_is_presented,
);

/// The freshness contract between a writing instance `w` and a reading one `r` on the same
/// database (both already holding the `acme` world): a token makes the first read fresh; without
/// one, a read is fresh within a second; a revoked client stops working within a second.
/// Returns the measured staleness of every untokened read.
async fn freshness_between(w: &Api, r: &Api, written: &str, client: &str) -> Vec<Duration> {
    let mut staleness = Vec::new();
    let allowed = may("dave", "EDIT_ITEMS", "/hr/team/docs");
    // Warm the reader: the allowed answer is cached there.
    for _ in 0..3 {
        let d = r
            .decide(CheckAccessRequest {
                consistency: fresh(written),
                ..allowed.clone()
            })
            .await;
        decided(&d, Reason::Allowed, None);
        assert!(rev(&d.checked_at) >= rev(written));
    }
    decided(&r.decide(allowed.clone()).await, Reason::Allowed, None);

    // A revocation, read with its token: the very first read sees it.
    let revoked = w.revoke_consent("acme", "crm").await;
    let d = r
        .decide(CheckAccessRequest {
            consistency: fresh(&revoked),
            ..allowed.clone()
        })
        .await;
    decided(&d, Reason::ConsentRevoked, Some("CONSENT"));
    assert!(rev(&d.checked_at) >= rev(&revoked));
    // Re-approved, and read without a token: seen within a second.
    w.approve(
        "acme",
        "crm",
        1,
        vec![resolved(ScopeLevel::SiteCollection, Right::Write, "/hr")],
    )
    .await;
    let since = Instant::now();
    staleness.push(
        within_a_second("re-approval, no token", since, || async {
            r.decide(allowed.clone()).await.allowed
        })
        .await,
    );
    // Revoked again, read without a token.
    w.revoke_consent("acme", "crm").await;
    let since = Instant::now();
    staleness.push(
        within_a_second("revocation, no token", since, || async {
            r.decide(allowed.clone()).await.reason() == Reason::ConsentRevoked
        })
        .await,
    );
    w.approve(
        "acme",
        "crm",
        1,
        vec![resolved(ScopeLevel::SiteCollection, Right::Write, "/hr")],
    )
    .await;

    // User rights: bob reads only; a grant through the writer, then its revocation.
    let bob = may("bob", "EDIT_ITEMS", "/hr/team");
    for round in 0..3 {
        let d = r.decide(bob.clone()).await;
        assert_eq!(
            d.reason(),
            Reason::UserPermissionInsufficient,
            "round {round}"
        );
        let granted = w.grant_right("acme", "bob", "/hr", Right::Write).await;
        let d = r
            .decide(CheckAccessRequest {
                consistency: fresh(&granted),
                ..bob.clone()
            })
            .await;
        decided(&d, Reason::Allowed, None);
        w.revoke_right("acme", "bob", "/hr", Right::Write).await;
        let since = Instant::now();
        staleness.push(
            within_a_second("right revoked, no token", since, || async {
                r.decide(bob.clone()).await.reason() == Reason::UserPermissionInsufficient
            })
            .await,
        );
        w.grant_right("acme", "bob", "/hr", Right::Write).await;
        let since = Instant::now();
        staleness.push(
            within_a_second("right granted, no token", since, || async {
                r.decide(bob.clone()).await.allowed
            })
            .await,
        );
        w.revoke_right("acme", "bob", "/hr", Right::Write).await;
        let since = Instant::now();
        staleness.push(
            within_a_second("right revoked again, no token", since, || async {
                !r.decide(bob.clone()).await.allowed
            })
            .await,
        );
    }

    // A client revoked through the writer stops working on the reader within a second.
    let key = w.client(client, &["acme"], &[Capability::Query]).await;
    within_a_second("new client works", Instant::now(), || async {
        r.check_as(&key, None, allowed.clone()).await.is_ok()
    })
    .await;
    for _ in 0..3 {
        assert!(r.check_as(&key, None, allowed.clone()).await.is_ok());
    }
    w.revoke_client(client).await;
    let since = Instant::now();
    staleness.push(
        within_a_second("client revoked", since, || async {
            matches!(
                r.check_as(&key, None, allowed.clone()).await,
                Err(s) if s.code() == Code::Unauthenticated
            )
        })
        .await,
    );
    // And stays revoked.
    for _ in 0..3 {
        fails(
            r.check_as(&key, None, allowed.clone()).await,
            Code::Unauthenticated,
            "",
        );
    }
    staleness
}

/// The same contract for the other queries: external permissions (group `group`, created
/// through the writer) and GetAppScopes.
async fn external_freshness_between(w: &Api, r: &Api, group: &str) -> Vec<Duration> {
    let mut staleness = Vec::new();
    w.put_user("acme", "carol", &[Role::PermissionManager], Some("alice"))
        .await;
    w.group("acme", group, &[], &["client:bootstrap"]).await;
    let permission = format!("{group}.p");
    w.permission("acme", group, &permission, "P").await;
    let listed = async |consistency: Option<Consistency>| {
        r.list(
            BOOTSTRAP_KEY,
            None,
            ListExternalPermissionsRequest {
                consistency,
                ..listing("dave", "", group)
            },
        )
        .await
        .unwrap()
        .permissions
        .len()
    };
    let granted = async |consistency: Option<Consistency>| {
        r.check_external(
            BOOTSTRAP_KEY,
            None,
            CheckExternalPermissionRequest {
                consistency,
                ..by_id("dave", &permission)
            },
        )
        .await
        .unwrap()
        .granted
    };
    let written = w.put_user("acme", "dave", &[], None).await;
    // Warm the reader's catalog and grants.
    assert_eq!(listed(fresh(&written)).await, 0);
    assert!(!granted(None).await);
    let written = w.grant("acme", "dave", &permission, None).await;
    assert_eq!(
        listed(fresh(&written)).await,
        1,
        "first read with the token"
    );
    assert!(granted(fresh(&written)).await);
    let (listed, granted) = (&listed, &granted);
    w.revoke_grant("acme", "dave", &permission).await;
    let since = Instant::now();
    staleness.push(
        within_a_second("external grant revoked, no token", since, || async move {
            listed(None).await == 0 && !granted(None).await
        })
        .await,
    );
    w.grant("acme", "dave", &permission, None).await;
    let since = Instant::now();
    staleness.push(
        within_a_second("external grant given, no token", since, || async move {
            listed(None).await == 1 && granted(None).await
        })
        .await,
    );
    // GetAppScopes: a revocation read with its token, then a re-approval without one.
    let scopes = async |consistency: Option<Consistency>| {
        r.scopes(GetAppScopesRequest {
            consistency,
            ..scopes_of("acme", "crm")
        })
        .await
        .unwrap()
        .consent
        .unwrap()
        .status()
    };
    assert_eq!(scopes(None).await, ConsentStatus::Approved);
    let revoked = w.revoke_consent("acme", "crm").await;
    assert_eq!(scopes(fresh(&revoked)).await, ConsentStatus::Revoked);
    w.approve(
        "acme",
        "crm",
        1,
        vec![resolved(ScopeLevel::SiteCollection, Right::Write, "/hr")],
    )
    .await;
    let scopes = &scopes;
    let since = Instant::now();
    staleness.push(
        within_a_second("GetAppScopes re-approved, no token", since, || async move {
            scopes(None).await == ConsentStatus::Approved
        })
        .await,
    );
    staleness
}

fn summary(staleness: &[Duration]) -> String {
    let max = staleness.iter().max().copied().unwrap_or_default();
    let mut sorted = staleness.to_vec();
    sorted.sort();
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or_default();
    format!("{} reads: median {median:?}, max {max:?}", staleness.len())
}

async fn two_processes_on_one_database_agree_within_a_second(db: &TestDb) {
    let a = BinaryServer::start(&db.url, &[]).await;
    let b = BinaryServer::start(&db.url, &[]).await;
    let (wa, rb) = (Api::at(a.addr).await, Api::at(b.addr).await);
    let written = acme(&wa).await;
    let mut staleness = freshness_between(&wa, &rb, &written, "svc-a").await;
    staleness.extend(external_freshness_between(&wa, &rb, "ga").await);
    eprintln!("two processes, A writes, B reads: {}", summary(&staleness));
    // And the other way round.
    let written = rb.put_user("acme", "dave", &[], None).await;
    let mut staleness = freshness_between(&rb, &wa, &written, "svc-b").await;
    staleness.extend(external_freshness_between(&rb, &wa, "gb").await);
    eprintln!("two processes, B writes, A reads: {}", summary(&staleness));
    let (sa, sb) = (a.terminate().await, b.terminate().await);
    assert!(sa.success() && sb.success(), "{sa:?} {sb:?}");
}

async fn two_in_process_servers_agree_within_a_second(db: &TestDb) {
    let a = TestServer::start(db).await;
    let b = TestServer::start(db).await;
    let (wa, rb) = (Api::at(a.addr).await, Api::at(b.addr).await);
    let written = acme(&wa).await;
    let mut staleness = freshness_between(&wa, &rb, &written, "svc").await;
    staleness.extend(external_freshness_between(&wa, &rb, "g").await);
    eprintln!("two in-process servers: {}", summary(&staleness));
    a.stop().await;
    b.stop().await;
}

/// Hits of the `apps` and `users` caches, and their misses, as the metrics of the server at
/// `metrics` count them (a process of its own, so they are that server's alone).
async fn counts(metrics: std::net::SocketAddr) -> [u64; 4] {
    let body = scrape(metrics).await;
    let count = |metric, cache| scraped(&body, metric, cache) as u64;
    [
        count("consentry_cache_hits_total", "apps"),
        count("consentry_cache_hits_total", "users"),
        count("consentry_cache_misses_total", "apps"),
        count("consentry_cache_misses_total", "users"),
    ]
}

/// The value of `<metric>{cache="<cache>"}` in a scrape.
fn scraped(body: &str, metric: &str, cache: &str) -> f64 {
    let label = format!("cache=\"{cache}\"");
    body.lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")) && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The value of `consentry_cache_hits_total{cache="<cache>"}` in a scrape.
fn scraped_hits(body: &str, cache: &str) -> f64 {
    scraped(body, "consentry_cache_hits_total", cache)
}

async fn repeated_checks_are_cache_hits(db: &TestDb) {
    let server = BinaryServer::start(&db.url, &["--metrics-listen", "127.0.0.1:0"]).await;
    let metrics = server.metrics.expect("metrics are served");
    let api = Api::at(server.addr).await;
    acme(&api).await;
    let q = may("dave", "EDIT_ITEMS", "/hr/team/docs");
    decided(&api.decide(q.clone()).await, Reason::Allowed, None);
    let before = counts(metrics).await;
    let scraped_before = scrape(metrics).await;
    let timing = Instant::now();
    for _ in 0..20 {
        decided(&api.decide(q.clone()).await, Reason::Allowed, None);
    }
    eprintln!(
        "20 cached checks, one after another: {:?}",
        timing.elapsed()
    );
    let after = counts(metrics).await;
    assert!(
        after[0] >= before[0] + 20,
        "apps hits {before:?} → {after:?}"
    );
    assert!(
        after[1] >= before[1] + 20,
        "users hits {before:?} → {after:?}"
    );
    assert_eq!(
        (after[2], after[3]),
        (before[2], before[3]),
        "no misses for repeated checks"
    );
    let scraped_after = scrape(metrics).await;
    for cache in ["apps", "users"] {
        let (b, a) = (
            scraped_hits(&scraped_before, cache),
            scraped_hits(&scraped_after, cache),
        );
        assert!(
            a >= b + 20.0,
            "{cache}: consentry_cache_hits_total {b} → {a}"
        );
    }
    // A store read is no cache lookup; a write invalidates, and the next read misses once.
    decided(
        &api.decide(CheckAccessRequest {
            consistency: fully(),
            ..q.clone()
        })
        .await,
        Reason::Allowed,
        None,
    );
    assert_eq!(counts(metrics).await, after);
    api.grant_right("acme", "dave", "/hr", Right::Manage).await;
    decided(&api.decide(q.clone()).await, Reason::Allowed, None);
    let reloaded = counts(metrics).await;
    assert_eq!(reloaded[3], after[3] + 1, "dave's snapshot reloaded once");
    assert_eq!(reloaded[2], after[2], "the app's snapshot was untouched");
    decided(&api.decide(q).await, Reason::Allowed, None);
    assert_eq!(counts(metrics).await[3], reloaded[3]);
    let status = server.terminate().await;
    assert!(status.success(), "{status:?}");
}

async fn a_revoked_consent_is_never_allowed_once_its_token_is_presented(db: &TestDb) {
    // A answers (its cache warm with ALLOWED), B takes the writes.
    let a = TestServer::start(db).await;
    let b = TestServer::start(db).await;
    let (ra, wb) = (Api::at(a.addr).await, Api::at(b.addr).await);
    acme(&wb).await;
    let q = may("dave", "EDIT_ITEMS", "/hr/team/docs");
    // Readers hammering A without a token keep loads racing with invalidations.
    let stop = Arc::new(AtomicBool::new(false));
    let hammered = Arc::new(AtomicUsize::new(0));
    let mut hammers = Vec::new();
    for _ in 0..4 {
        let (ra, q, stop, hammered) = (ra.clone(), q.clone(), stop.clone(), hammered.clone());
        hammers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let _ = ra.check(q.clone()).await;
                hammered.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for round in 0..20 {
        let approved = wb
            .approve(
                "acme",
                "crm",
                1,
                vec![resolved(ScopeLevel::SiteCollection, Right::Write, "/hr")],
            )
            .await;
        let d = ra
            .decide(CheckAccessRequest {
                consistency: fresh(&approved),
                ..q.clone()
            })
            .await;
        decided(&d, Reason::Allowed, None);
        // Warm: answered from the cache.
        decided(&ra.decide(q.clone()).await, Reason::Allowed, None);
        let revoked = wb.revoke_consent("acme", "crm").await;
        let d = ra
            .decide(CheckAccessRequest {
                consistency: fresh(&revoked),
                ..q.clone()
            })
            .await;
        assert_eq!(
            d.reason(),
            Reason::ConsentRevoked,
            "round {round}: ALLOWED after the revocation's token: {d:#?}"
        );
        assert!(rev(&d.checked_at) >= rev(&revoked));
        // A batch with the token, too.
        let batch = ra
            .batch(BOOTSTRAP_KEY, vec![q.clone(), q.clone()], fresh(&revoked))
            .await
            .unwrap();
        for d in &batch.results {
            assert_eq!(d.reason(), Reason::ConsentRevoked, "round {round} (batch)");
        }
        // Without a token A now answers at least as fresh as it already did (monotonic reads).
        let untokened = ra.decide(q.clone()).await;
        assert_eq!(
            untokened.reason(),
            Reason::ConsentRevoked,
            "round {round}: an untokened read went back in time: {untokened:#?}"
        );
        assert!(rev(&untokened.checked_at) >= rev(&revoked));
    }
    stop.store(true, Ordering::Relaxed);
    for h in hammers {
        h.await.unwrap();
    }
    eprintln!(
        "20 rounds of approve/revoke with {} concurrent untokened reads",
        hammered.load(Ordering::Relaxed)
    );
    a.stop().await;
    b.stop().await;
}

async fn the_instance_that_wrote_reads_its_write_without_a_token(db: &TestDb) {
    let (server, api) = acme_server(db).await;
    let q = may("dave", "EDIT_ITEMS", "/hr/team/docs");
    let bob = may("bob", "EDIT_ITEMS", "/hr/team/docs");
    for _ in 0..10 {
        decided(&api.decide(q.clone()).await, Reason::Allowed, None);
        decided(&api.decide(q.clone()).await, Reason::Allowed, None);
        api.revoke_consent("acme", "crm").await;
        decided(
            &api.decide(q.clone()).await,
            Reason::ConsentRevoked,
            Some("CONSENT"),
        );
        api.approve(
            "acme",
            "crm",
            1,
            vec![resolved(ScopeLevel::SiteCollection, Right::Write, "/hr")],
        )
        .await;
        decided(&api.decide(q.clone()).await, Reason::Allowed, None);
        api.grant_right("acme", "bob", "/hr", Right::Write).await;
        decided(&api.decide(bob.clone()).await, Reason::Allowed, None);
        api.revoke_right("acme", "bob", "/hr", Right::Write).await;
        decided(
            &api.decide(bob.clone()).await,
            Reason::UserPermissionInsufficient,
            Some("PERMISSION"),
        );
    }
    // Its external grants and clients too.
    api.put_user("acme", "carol", &[Role::PermissionManager], Some("alice"))
        .await;
    api.group("acme", "g", &[], &["client:bootstrap"]).await;
    api.permission("acme", "g", "g.p", "GP").await;
    let listed = async || {
        api.list(BOOTSTRAP_KEY, None, listing("dave", "", ""))
            .await
            .unwrap()
            .permissions
            .len()
    };
    assert_eq!(listed().await, 0);
    api.grant("acme", "dave", "g.p", None).await;
    assert_eq!(listed().await, 1);
    let key = api.client("svc", &["acme"], &[Capability::Query]).await;
    assert!(api.check_as(&key, None, q.clone()).await.unwrap().allowed);
    api.revoke_client("svc").await;
    fails(api.check_as(&key, None, q).await, Code::Unauthenticated, "");
    server.stop().await;
}
