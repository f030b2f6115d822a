//! Revisions and the audit log: the revision starts at zero and every write appends one audit
//! event at the next one; filtering the log by tenant, target, actor and time, within what the
//! caller may see.

use super::*;
use crate::support::db::{TestDb, backend_tests};
use consentry::domain::AuditTarget;

backend_tests!(
    revision_starts_at_zero_and_every_write_appends_one_audit_event,
    audit_events_filter_by_tenant_target_actor_time_and_visibility,
);

async fn revision_starts_at_zero_and_every_write_appends_one_audit_event(db: &TestDb) {
    let store = db.store().await;
    let s: &dyn Store = &store;
    assert_eq!(s.revision().await.unwrap(), Revision::number(0));
    assert!(events(s).await.is_empty());
    let acme = tid("acme");

    let ((written, created), ev) = wrote!(
        s,
        s.put_tenant(&ctx(&root(), None, 1), &tenant("acme", "production", false))
    );
    assert!(created);
    assert_eq!(written, Revision::number(1));
    assert_eq!(ev.revision, Revision::number(1));
    assert_eq!(ev.at, at(1));
    assert_eq!(ev.actor_client, "root");
    assert_eq!(ev.actor_user, None);
    assert_eq!(ev.action, "PutTenant");
    assert_eq!(ev.tenant_id, Some(acme.clone()));
    assert_eq!(ev.target, "tenant:acme");
    assert_eq!(ev.before, None);
    let after = parsed(&ev.after);
    assert_eq!(after["tenant_id"], "acme");
    assert_eq!(after["environment"], "production");
    assert_eq!(after["whitelisting_enabled"], false);

    let (written, ev) = wrote!(
        s,
        s.put_user(
            &ctx(&root(), None, 2),
            &acme,
            &uid("alice"),
            roles(&[Role::GeneralAdmin])
        )
    );
    assert_eq!(written, Revision::number(2));
    assert_eq!(
        (ev.action.as_str(), ev.target.as_str()),
        ("PutUser", "user:alice")
    );
    assert_eq!(ev.at, at(2));
    assert_eq!(ev.before, None);
    assert_eq!(parsed(&ev.after)["roles"], json!(["GENERAL_ADMIN"]));

    // The acting user is recorded beside the client.
    let (_, ev) = wrote!(
        s,
        s.put_user(
            &ctx(&root(), Some("alice"), 3),
            &acme,
            &uid("bob"),
            roles(&[Role::Delegate])
        )
    );
    assert_eq!(ev.actor_client, "root");
    assert_eq!(ev.actor_user, Some(uid("alice")));
    assert_eq!(ev.tenant_id, Some(acme.clone()));
    // Replacing records what was there before.
    let (_, ev) = wrote!(
        s,
        s.put_user(
            &ctx(&root(), Some("alice"), 4),
            &acme,
            &uid("bob"),
            RoleSet::EMPTY
        )
    );
    assert_eq!(parsed(&ev.before)["roles"], json!(["DELEGATE"]));
    assert_eq!(parsed(&ev.after), json!({"user_id": "bob", "roles": []}));

    // Refused writes take no revision and leave no event ...
    refused!(
        s,
        s.put_user(&by_root(), &tid("nowhere"), &uid("x"), RoleSet::EMPTY),
        StoreError::NotFound(_)
    );
    refused!(
        s,
        s.put_user(&by_root(), &acme, &uid("carol"), roles(&[Role::UserAdmin])),
        denied!()
    );
    // ... so the next write takes the very next one.
    let (written, _) = wrote!(
        s,
        s.put_user(&by_root(), &acme, &uid("carol"), RoleSet::EMPTY)
    );
    assert_eq!(written, Revision::number(5));

    let all = events(s).await;
    assert_eq!(revisions(&all), [1, 2, 3, 4, 5]);
    assert_eq!(
        all.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
        ["PutTenant", "PutUser", "PutUser", "PutUser", "PutUser"]
    );
    // Audit rows are never updated or deleted: the schema refuses it.
    for sql in [
        "UPDATE audit_events SET action = 'Forged'",
        "DELETE FROM audit_events",
    ] {
        let got = sqlx::query(sql).execute(store.pool()).await;
        assert!(got.is_err(), "{sql}: {got:?}");
    }
    assert_eq!(events(s).await, all);
    // Reads report the revision they were read at.
    assert_eq!(
        s.user_snapshot(&acme, &uid("bob"), consentry::store::ReadFrom::Primary)
            .await
            .unwrap()
            .1,
        Revision::number(5)
    );
}

async fn audit_events_filter_by_tenant_target_actor_time_and_visibility(db: &TestDb) {
    let store = db.store().await;
    let s: &dyn Store = &store;
    let (acme, globex) = (tid("acme"), tid("globex"));
    let ops = caller(
        "ops",
        TenantBounds::All,
        &[Capability::Admin, Capability::AssertUser],
    );
    // 1..=9, at 1..=9 s.
    s.put_tenant(&ctx(&root(), None, 1), &tenant("acme", "production", false))
        .await
        .unwrap();
    s.put_tenant(
        &ctx(&root(), None, 2),
        &tenant("globex", "production", false),
    )
    .await
    .unwrap();
    s.put_user(
        &ctx(&root(), None, 3),
        &acme,
        &uid("alice"),
        roles(&[Role::GeneralAdmin]),
    )
    .await
    .unwrap();
    s.put_user(
        &ctx(&root(), None, 4),
        &globex,
        &uid("bob"),
        roles(&[Role::GeneralAdmin]),
    )
    .await
    .unwrap();
    s.put_user(
        &ctx(&ops, Some("alice"), 5),
        &acme,
        &uid("bob"),
        RoleSet::EMPTY,
    )
    .await
    .unwrap();
    s.register_app(
        &ctx(&root(), None, 6),
        &aid("crm"),
        &name("CRM"),
        AppKind::Standard,
        &Manifest::default(),
    )
    .await
    .unwrap();
    s.put_user(
        &ctx(&ops, Some("bob"), 7),
        &globex,
        &uid("alice"),
        RoleSet::EMPTY,
    )
    .await
    .unwrap();
    s.create_client(
        Some(&ctx(&root(), None, 8)),
        &cid("x"),
        &TenantBounds::All,
        Capabilities::of([Capability::Query]),
        "hash-x",
    )
    .await
    .unwrap();
    s.grant_user_right(
        &ctx(&root(), Some("alice"), 9),
        &acme,
        &uid("alice"),
        &path("/"),
        Right::Read,
    )
    .await
    .unwrap();
    assert_eq!(s.revision().await.unwrap(), Revision::number(9));
    let all = events(s).await;
    assert_eq!(
        all.iter().map(|e| e.at).collect::<Vec<_>>(),
        (1..=9).map(at).collect::<Vec<_>>()
    );

    let cases: Vec<(AuditFilter, Vec<u64>)> = vec![
        (AuditFilter::default(), (1..=9).collect()),
        (
            AuditFilter {
                tenant_id: Some(acme.clone()),
                ..AuditFilter::default()
            },
            vec![1, 3, 5, 9],
        ),
        (
            AuditFilter {
                tenant_id: Some(globex.clone()),
                ..AuditFilter::default()
            },
            vec![2, 4, 7],
        ),
        (
            AuditFilter {
                target: Some(AuditTarget::parse("target", "user:bob").unwrap()),
                ..AuditFilter::default()
            },
            vec![4, 5],
        ),
        (
            AuditFilter {
                target: Some(AuditTarget::parse("target", "user:bob").unwrap()),
                tenant_id: Some(acme.clone()),
                ..AuditFilter::default()
            },
            vec![5],
        ),
        (
            AuditFilter {
                target: Some(AuditTarget::parse("target", "app:crm").unwrap()),
                ..AuditFilter::default()
            },
            vec![6],
        ),
        (
            AuditFilter {
                actor: Some(principal("client:ops")),
                ..AuditFilter::default()
            },
            vec![5, 7],
        ),
        (
            AuditFilter {
                actor: Some(principal("client:root")),
                ..AuditFilter::default()
            },
            vec![1, 2, 3, 4, 6, 8, 9],
        ),
        (
            AuditFilter {
                actor: Some(principal("user:alice")),
                ..AuditFilter::default()
            },
            vec![5, 9],
        ),
        (
            AuditFilter {
                actor: Some(principal("user:ghost")),
                ..AuditFilter::default()
            },
            vec![],
        ),
        (
            AuditFilter {
                actor: Some(principal("app:crm")),
                ..AuditFilter::default()
            },
            vec![],
        ),
        (
            AuditFilter {
                since: Some(at(6)),
                ..AuditFilter::default()
            },
            vec![6, 7, 8, 9],
        ),
        (
            AuditFilter {
                since: Some(at(10)),
                ..AuditFilter::default()
            },
            vec![],
        ),
        (
            AuditFilter {
                visible_to: Some(TenantBounds::All),
                ..AuditFilter::default()
            },
            (1..=9).collect(),
        ),
        (
            AuditFilter {
                visible_to: Some(only(&["acme"])),
                ..AuditFilter::default()
            },
            vec![1, 3, 5, 9],
        ),
        (
            AuditFilter {
                visible_to: Some(only(&["acme", "globex"])),
                ..AuditFilter::default()
            },
            vec![1, 2, 3, 4, 5, 7, 9],
        ),
        (
            AuditFilter {
                visible_to: Some(only(&["initech"])),
                ..AuditFilter::default()
            },
            vec![],
        ),
        (
            AuditFilter {
                visible_to: Some(TenantBounds::Only(BTreeSet::new())),
                ..AuditFilter::default()
            },
            vec![],
        ),
        (
            AuditFilter {
                visible_to: Some(only(&["globex"])),
                since: Some(at(4)),
                ..AuditFilter::default()
            },
            vec![4, 7],
        ),
        (
            AuditFilter {
                visible_to: Some(only(&["globex"])),
                tenant_id: Some(acme.clone()),
                ..AuditFilter::default()
            },
            vec![],
        ),
        (
            AuditFilter {
                actor: Some(principal("client:ops")),
                tenant_id: Some(globex.clone()),
                ..AuditFilter::default()
            },
            vec![7],
        ),
    ];
    for (filter, expected) in cases {
        assert_eq!(
            revisions(&events_where(s, &filter).await),
            expected,
            "{filter:?}"
        );
    }
    // The matching events are whole and page like every list.
    let acme_only = AuditFilter {
        tenant_id: Some(acme.clone()),
        ..AuditFilter::default()
    };
    let (acme_events, sizes) = all_pages!(3, |page| {
        s.list_audit_events(&acme_only, &page).await.unwrap()
    });
    assert_eq!(sizes, [3, 1]);
    let expected: Vec<AuditEvent> = all
        .iter()
        .filter(|e| e.tenant_id.as_ref() == Some(&acme))
        .cloned()
        .collect();
    assert_eq!(acme_events, expected);
    assert_eq!(acme_events[2].actor_client, "ops");
    assert_eq!(acme_events[2].actor_user, Some(uid("alice")));
}
