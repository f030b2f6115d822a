//! CheckAccessBatch: every item answered in order at one revision, each as the single check
//! would answer it; a batch that is malformed, too large or out of bounds fails as a whole.

use tonic::Code;

use super::*;
use crate::support::calls::Cases;
use crate::support::db::{backend_tests, postgres_tests};

backend_tests!(batches_answer_every_item_in_order_at_one_revision);

postgres_tests!(batches_fail_as_a_whole);

/// Six questions with six different answers, in a fixed order.
fn six_questions() -> (Vec<CheckAccessRequest>, Vec<Reason>) {
    let items = vec![
        may("dave", "EDIT_ITEMS", "/hr/team/docs"),
        may("bob", "EDIT_ITEMS", "/hr"),
        CheckAccessRequest {
            tenant_id: "globex".into(),
            ..may("dave", "READ", "/")
        },
        CheckAccessRequest {
            app_id: "ghost".into(),
            ..may("dave", "READ", "/")
        },
        may("", "READ", "/hr"),
        CheckAccessRequest {
            scope: "calendar:read".into(),
            ..may("dave", "READ", "/hr")
        },
    ];
    let reasons = vec![
        Reason::Allowed,
        Reason::UserPermissionInsufficient,
        Reason::UnknownTenant,
        Reason::UnknownApp,
        Reason::UserRequired,
        Reason::ScopeNotGranted,
    ];
    (items, reasons)
}

async fn batches_answer_every_item_in_order_at_one_revision(db: &TestDb) {
    let server = TestServer::start(db).await;
    let api = Api::at(server.addr).await;
    let written = acme(&api).await;
    let (items, reasons) = six_questions();
    for consistency in [None, fresh(&written), fully(), cached()] {
        let r = api
            .batch(BOOTSTRAP_KEY, items.clone(), consistency.clone())
            .await
            .unwrap_or_else(|s| panic!("batch with {consistency:?}: {s:?}"));
        assert_eq!(r.results.len(), items.len());
        assert!(rev(&r.checked_at) >= rev(&written));
        for (i, (result, reason)) in r.results.iter().zip(&reasons).enumerate() {
            assert_eq!(result.reason(), *reason, "item {i}: {result:#?}");
            assert_eq!(
                result.checked_at, r.checked_at,
                "every item at the batch's revision"
            );
            // Each answer is the single check's answer.
            let single = api.decide(items[i].clone()).await;
            assert_eq!(single.reason(), *reason);
            assert_eq!(single.trace, result.trace, "item {i}");
        }
    }
    // An empty batch answers empty.
    let empty = api.batch(BOOTSTRAP_KEY, vec![], None).await.unwrap();
    assert!(empty.results.is_empty());
    rev(&empty.checked_at);
    let empty = api.batch(BOOTSTRAP_KEY, vec![], fully()).await.unwrap();
    assert!(empty.results.is_empty());
    // Exactly the limit is fine.
    let full = vec![may("dave", "EDIT_ITEMS", "/hr"); 100];
    let r = api.batch(BOOTSTRAP_KEY, full, None).await.unwrap();
    assert_eq!(r.results.len(), 100);
    assert!(r.results.iter().all(|d| d.allowed));
    server.stop().await;
}

async fn batches_fail_as_a_whole(db: &TestDb) {
    let (server, api) = acme_server(db).await;
    let (items, _) = six_questions();
    let mut cases = Cases::new("batches that fail as a whole");
    // More than 100 items.
    let many = vec![may("dave", "EDIT_ITEMS", "/hr"); 101];
    cases.check(
        "101 items",
        api.batch(BOOTSTRAP_KEY, many, None).await,
        Code::InvalidArgument,
        "items",
    );
    // An item with a consistency of its own.
    let mut own = items.clone();
    own[2].consistency = fully();
    cases.check(
        "item consistency",
        api.batch(BOOTSTRAP_KEY, own, None).await,
        Code::InvalidArgument,
        "items[2]",
    );
    // A malformed item, anywhere in the batch.
    let mut bad = items.clone();
    bad[4].resource = "hr/team".into();
    cases.check_all(
        "malformed item",
        api.batch(BOOTSTRAP_KEY, bad, None).await,
        Code::InvalidArgument,
        &["items[4]", "resource"],
    );
    let mut bad = items.clone();
    bad[1].permission = "edit_items".into();
    cases.check(
        "malformed permission",
        api.batch(BOOTSTRAP_KEY, bad, None).await,
        Code::InvalidArgument,
        "",
    );
    // An item outside a tenant-bound caller's tenants: the whole call is refused.
    let key = api
        .client("acme-only", &["acme"], &[Capability::Query])
        .await;
    let acme_only: Vec<_> = items
        .iter()
        .filter(|q| q.tenant_id == "acme")
        .cloned()
        .collect();
    let r = api.batch(&key, acme_only.clone(), None).await.unwrap();
    assert_eq!(r.results.len(), acme_only.len());
    cases.check(
        "out-of-bounds item",
        api.batch(&key, items.clone(), None).await,
        Code::PermissionDenied,
        "",
    );
    // A malformed batch consistency token; a token from the future.
    cases.check(
        "malformed batch token",
        api.batch(BOOTSTRAP_KEY, items.clone(), fresh("nope")).await,
        Code::InvalidArgument,
        "",
    );
    cases.check(
        "future batch token",
        api.batch(BOOTSTRAP_KEY, items, fresh("r999999")).await,
        Code::FailedPrecondition,
        "",
    );
    cases.finish();
    server.stop().await;
}
