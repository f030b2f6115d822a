//! A database whose history moves backwards under running instances (docs/rules.md §9): a backup
//! taken with `pg_dump`, writes, then the database dropped, created again and restored with
//! `pg_restore` while the binaries keep serving. Each instance notices within its poll (or at
//! once, when a write or a token from the new history reaches it), drops everything it cached,
//! follows the store's head, counts the regression, and refuses tokens of the lost history.

use tonic::Code;

use super::*;
use crate::support::calls::fails;
use crate::support::db::postgres_tests;
use crate::support::server::{BinaryServer, eventually, scrape};

postgres_tests!(
    a_restore_under_a_running_instance_drops_what_it_cached_within_a_poll,
    writes_past_the_lost_history_before_any_poll_are_still_noticed_on_every_instance,
);

/// The `acme` world up to, not including, the CRM app's approval; returns the app's manifest
/// revision.
async fn acme_before_consent(api: &Api) -> i64 {
    api.put_tenant("acme", false, None).await;
    api.put_user("acme", "alice", &[Role::GeneralAdmin], None)
        .await;
    api.put_user("acme", "dave", &[], None).await;
    api.grant_right("acme", "dave", "/hr", Right::Write).await;
    api.register("crm", AppKind::Standard, crm_manifest()).await
}

/// Approves the CRM app in `acme` with WRITE on `/hr`, as alice.
async fn approve_crm(api: &Api, manifest_revision: i64) -> String {
    let requests = vec![resolved(ScopeLevel::SiteCollection, Right::Write, "/hr")];
    api.approve("acme", "crm", manifest_revision, requests)
        .await
}

/// Where a test keeps its backup (removed by the test).
fn backup_file(db: &TestDb) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("{}.dump", db.postgres_name()))
}

/// `consentry_revision_regressions_total` in a scrape.
async fn regressions(metrics: SocketAddr) -> f64 {
    let body = scrape(metrics).await;
    body.lines()
        .find(|l| l.starts_with("consentry_revision_regressions_total"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no consentry_revision_regressions_total in {body}"))
}

/// A binary serving `db` with metrics, a small pool and `args`.
async fn instance(db: &TestDb, args: &[&str]) -> (BinaryServer, Api, SocketAddr) {
    let mut all = vec![
        "--metrics-listen",
        "127.0.0.1:0",
        "--db-max-connections",
        "3",
    ];
    all.extend_from_slice(args);
    let server = BinaryServer::start(&db.url, &all).await;
    let api = Api::at(server.addr).await;
    let metrics = server.metrics.expect("metrics are served");
    (server, api, metrics)
}

fn at_least(token: &str, q: &CheckAccessRequest) -> CheckAccessRequest {
    CheckAccessRequest {
        consistency: fresh(token),
        ..q.clone()
    }
}

/// An ALLOWED check is cached; the database is then replaced by a backup taken before the
/// approval that allowed it. Within the poll interval (250 ms) and a second, the instance no
/// longer allows it, has counted one regression, and refuses the approval's token, also once
/// the new history has a revision of the same number.
async fn a_restore_under_a_running_instance_drops_what_it_cached_within_a_poll(db: &TestDb) {
    let (server, api, metrics) = instance(db, &[]).await;
    let manifest_revision = acme_before_consent(&api).await;
    let backup = backup_file(db);
    db.dump(&backup);

    let approved = approve_crm(&api, manifest_revision).await;
    let q = may("dave", "EDIT_ITEMS", "/hr/team/docs");
    decided(&api.decide(q.clone()).await, Reason::Allowed, None);
    decided(&api.decide(q.clone()).await, Reason::Allowed, None);
    assert_eq!(regressions(metrics).await, 0.0);

    db.restore(&backup).await;
    let _ = std::fs::remove_file(&backup);
    let took = eventually(Duration::from_millis(1250), || async {
        match api.check(q.clone()).await {
            Ok(d) => {
                assert!(
                    d.allowed || d.reason() == Reason::NoConsent,
                    "either the cached answer or the restored one: {d:#?}"
                );
                d.reason() == Reason::NoConsent
            }
            // The restore just finished: a read may still meet a connection it closed.
            Err(s) => {
                assert_eq!(s.code(), Code::Unavailable, "{s:?}");
                false
            }
        }
    })
    .await;
    eprintln!("the restore was noticed after {took:?}");
    assert_eq!(regressions(metrics).await, 1.0, "one regression counted");
    decided(
        &api.decide(q.clone()).await,
        Reason::NoConsent,
        Some("CONSENT"),
    );

    // The approval's token names a revision the restored store has not reached...
    fails(
        api.check(at_least(&approved, &q)).await,
        Code::FailedPrecondition,
        "newer than anything committed",
    );
    // ...and, once a write gives the new history a revision of that number, one it does not hold.
    let written = api.grant_right("acme", "dave", "/sales", Right::Read).await;
    assert_eq!(rev(&written), rev(&approved), "the number is reused");
    assert_ne!(written, approved, "but not the token");
    fails(
        api.check(at_least(&approved, &q)).await,
        Code::FailedPrecondition,
        "no longer holds",
    );
    decided(
        &api.decide(at_least(&written, &q)).await,
        Reason::NoConsent,
        Some("CONSENT"),
    );
    assert_eq!(regressions(metrics).await, 1.0, "still one regression");
    drop(server);
}

/// Three instances with no change listener and a poll too slow to run during the test. The
/// backup is taken, three writes are lost, and after the restore five writes (among them the
/// revocation of the consent and of a client the instances had cached) carry the store's head
/// past the revision every instance had applied, so a head that is merely lower is never seen.
/// The writing instance refuses both at once; an instance handed the last write's token, and one
/// handed the first one's (a number it had applied in the lost history), refuse them at once too.
async fn writes_past_the_lost_history_before_any_poll_are_still_noticed_on_every_instance(
    db: &TestDb,
) {
    // The first poll runs at start; the next would come after the test.
    let quiet = [
        "--change-listener=false",
        "--change-poll-interval",
        "10min",
        "--max-staleness",
        "20min",
    ];
    let (w, writer, w_metrics) = instance(db, &quiet).await;
    let manifest_revision = acme_before_consent(&writer).await;
    let approved = approve_crm(&writer, manifest_revision).await;
    let key = writer.client("svc", &["acme"], &[Capability::Query]).await;
    let (b, by_last, b_metrics) = instance(db, &quiet).await;
    let (c, by_first, c_metrics) = instance(db, &quiet).await;
    let q = may("dave", "EDIT_ITEMS", "/hr/team/docs");
    for api in [&writer, &by_last, &by_first] {
        for _ in 0..2 {
            let d = api.check_as(&key, None, at_least(&approved, &q)).await;
            decided(&d.expect("svc checks"), Reason::Allowed, None);
        }
    }
    let backup = backup_file(db);
    db.dump(&backup);

    // Three writes that the restore will lose, applied by every instance.
    let mut lost = String::new();
    for resource in ["/x1", "/x2", "/x3"] {
        lost = writer
            .grant_right("acme", "dave", resource, Right::Read)
            .await;
    }
    for api in [&by_last, &by_first] {
        decided(
            &api.decide(at_least(&lost, &q)).await,
            Reason::Allowed,
            None,
        );
    }

    db.restore(&backup).await;
    let _ = std::fs::remove_file(&backup);
    // Five writes after the restore, past the revision every instance applied.
    let first = writer.revoke_consent("acme", "crm").await;
    writer.revoke_client("svc").await;
    let mut last = String::new();
    for resource in ["/y1", "/y2", "/y3"] {
        last = writer
            .grant_right("acme", "dave", resource, Right::Read)
            .await;
    }
    assert_eq!(rev(&first), rev(&lost) - 2);
    assert_eq!(
        rev(&last),
        rev(&lost) + 2,
        "the head is past the lost history's"
    );

    // The writer noticed at its first write after the restore.
    decided(
        &writer.decide(q.clone()).await,
        Reason::ConsentRevoked,
        Some("CONSENT"),
    );
    fails(
        writer.check_as(&key, None, q.clone()).await,
        Code::Unauthenticated,
        "",
    );
    // A newer token than an instance applied: it reads the change log, which finds the history
    // replaced.
    decided(
        &by_last.decide(at_least(&last, &q)).await,
        Reason::ConsentRevoked,
        Some("CONSENT"),
    );
    // A token whose number the instance applied, with another tag: the same.
    decided(
        &by_first.decide(at_least(&first, &q)).await,
        Reason::ConsentRevoked,
        Some("CONSENT"),
    );
    for (api, metrics) in [
        (&writer, w_metrics),
        (&by_last, b_metrics),
        (&by_first, c_metrics),
    ] {
        decided(
            &api.decide(q.clone()).await,
            Reason::ConsentRevoked,
            Some("CONSENT"),
        );
        fails(
            api.check_as(&key, None, q.clone()).await,
            Code::Unauthenticated,
            "",
        );
        // A token of the lost history is refused everywhere.
        fails(
            api.check(at_least(&lost, &q)).await,
            Code::FailedPrecondition,
            "no longer holds",
        );
        assert_eq!(regressions(metrics).await, 1.0);
    }
    drop((w, b, c));
}
