//! Clients: created, found by the hash of their key, and revoked.

use super::*;
use crate::support::db::{TestDb, backend_tests};

backend_tests!(clients_are_created_found_by_key_hash_and_revoked);

async fn clients_are_created_found_by_key_hash_and_revoked(db: &TestDb) {
    let store = db.store().await;
    let s: &dyn Store = &store;
    let ops_caps = Capabilities::of([Capability::Admin, Capability::AssertUser]);

    // The operator's CLI (no context) is audited as `(cli)`; the key hash is never recorded.
    let (_, ev) = wrote!(
        s,
        s.create_client(
            None,
            &cid("ops"),
            &only(&["acme", "globex"]),
            ops_caps,
            "hash-ops"
        )
    );
    assert_eq!(ev.actor_client, "(cli)");
    assert_eq!(ev.actor_user, None);
    assert_eq!(ev.action, "CreateClient");
    assert_eq!(ev.tenant_id, None);
    assert_eq!(ev.target, "client:ops");
    assert_eq!(ev.before, None);
    let after = parsed(&ev.after);
    assert_eq!(after["client_id"], "ops");
    assert_eq!(after["tenants"], json!(["acme", "globex"]));
    assert_eq!(after["capabilities"], json!(["admin", "assert_user"]));
    assert_eq!(after["revoked_at"], Value::Null);
    assert!(!ev.after.as_deref().unwrap().contains("hash-ops"));

    let ops = s.client_by_key_hash("hash-ops").await.unwrap().unwrap();
    assert_eq!(
        ops,
        caller(
            "ops",
            only(&["acme", "globex"]),
            &[Capability::Admin, Capability::AssertUser]
        )
    );
    assert_eq!(s.client_by_key_hash("hash-nope").await.unwrap(), None);
    assert_eq!(s.client_by_key_hash("").await.unwrap(), None);

    // A client never creates a stronger one.
    let admin_only = Capabilities::of([Capability::Admin]);
    refused!(
        s,
        s.create_client(
            Some(&ctx(&ops, None, 0)),
            &cid("x"),
            &TenantBounds::All,
            admin_only,
            "h-x"
        ),
        denied!()
    );
    refused!(
        s,
        s.create_client(
            Some(&ctx(&ops, None, 0)),
            &cid("x"),
            &only(&["acme", "initech"]),
            admin_only,
            "h-x"
        ),
        denied!()
    );
    refused!(
        s,
        s.create_client(
            Some(&ctx(&ops, None, 0)),
            &cid("x"),
            &only(&["acme"]),
            Capabilities::of([Capability::Admin, Capability::AppManager]),
            "h-x"
        ),
        denied!()
    );
    let (_, ev) = wrote!(
        s,
        s.create_client(
            Some(&ctx(&ops, Some("alice"), 5)),
            &cid("acme-reader"),
            &only(&["acme"]),
            admin_only,
            "hash-reader"
        )
    );
    assert_eq!(ev.actor_client, "ops");
    assert_eq!(ev.actor_user, Some(uid("alice")));
    assert_eq!(ev.at, at(5));
    assert_eq!(parsed(&ev.after)["created_at"], at(5).as_micros());
    let reader = s.client_by_key_hash("hash-reader").await.unwrap().unwrap();
    assert_eq!(
        reader,
        caller("acme-reader", only(&["acme"]), &[Capability::Admin])
    );

    // Ids and key hashes are unique.
    refused!(
        s,
        s.create_client(
            None,
            &cid("acme-reader"),
            &only(&["acme"]),
            admin_only,
            "hash-new"
        ),
        StoreError::AlreadyExists(_)
    );
    refused!(
        s,
        s.create_client(
            None,
            &cid("another"),
            &only(&["acme"]),
            admin_only,
            "hash-ops"
        ),
        StoreError::AlreadyExists(_)
    );

    // Revocation: only within the caller's own bounds.
    refused!(
        s,
        s.revoke_client(Some(&ctx(&reader, None, 0)), &cid("ops")),
        denied!()
    );
    let (_, ev) = wrote!(
        s,
        s.revoke_client(Some(&ctx(&ops, None, 7)), &cid("acme-reader"))
    );
    assert_eq!(ev.action, "RevokeClient");
    assert_eq!(ev.target, "client:acme-reader");
    assert_eq!(parsed(&ev.before)["revoked_at"], Value::Null);
    assert_eq!(parsed(&ev.after)["revoked_at"], at(7).as_micros());
    assert!(!ev.before.as_deref().unwrap().contains("hash-reader"));
    assert_eq!(s.client_by_key_hash("hash-reader").await.unwrap(), None);
    refused!(
        s,
        s.revoke_client(None, &cid("acme-reader")),
        StoreError::NotFound(_)
    );
    refused!(
        s,
        s.revoke_client(None, &cid("ghost")),
        StoreError::NotFound(_)
    );
    // A revoked client's id is never reused.
    refused!(
        s,
        s.create_client(
            None,
            &cid("acme-reader"),
            &only(&["acme"]),
            admin_only,
            "hash-again"
        ),
        StoreError::AlreadyExists(_)
    );
    let (clients, _) = all_pages!(10, |page| s.list_clients(&page).await.unwrap());
    assert_eq!(
        clients
            .iter()
            .map(|c| (c.caller.client_id.to_string(), c.revoked_at))
            .collect::<Vec<_>>(),
        [
            ("acme-reader".to_owned(), Some(at(7))),
            ("ops".to_owned(), None)
        ]
    );
    assert_eq!(clients[0].created_at, at(5));
    assert_eq!(clients[0].caller, reader);

    // The bootstrap client: created once, never replaced, and a revoked one stays revoked.
    let before = s.revision().await.unwrap();
    assert_eq!(
        s.ensure_bootstrap_client("hash-boot").await.unwrap(),
        BootstrapOutcome::Created
    );
    let ev = check_written(s, before, Revision::number(before.0 + 1)).await;
    assert_eq!(ev.actor_client, "(bootstrap)");
    assert_eq!(ev.action, "CreateClient");
    assert_eq!(ev.target, "client:bootstrap");
    assert_eq!(parsed(&ev.after)["tenants"], json!(["*"]));
    assert!(!ev.after.as_deref().unwrap().contains("hash-boot"));
    assert_eq!(
        s.client_by_key_hash("hash-boot").await.unwrap(),
        Some(Caller {
            client_id: cid("bootstrap"),
            tenants: TenantBounds::All,
            capabilities: Capabilities::all(),
        })
    );
    let before = s.revision().await.unwrap();
    assert_eq!(
        s.ensure_bootstrap_client("hash-other").await.unwrap(),
        BootstrapOutcome::Exists
    );
    check_untouched(s, before).await;
    assert_eq!(s.client_by_key_hash("hash-other").await.unwrap(), None);
    assert!(s.client_by_key_hash("hash-boot").await.unwrap().is_some());
    let (_, ev) = wrote!(s, s.revoke_client(None, &cid("bootstrap")));
    assert_eq!(ev.actor_client, "(cli)");
    let before = s.revision().await.unwrap();
    assert_eq!(
        s.ensure_bootstrap_client("hash-new").await.unwrap(),
        BootstrapOutcome::Revoked
    );
    check_untouched(s, before).await;
    assert_eq!(s.client_by_key_hash("hash-new").await.unwrap(), None);
    assert_eq!(s.client_by_key_hash("hash-boot").await.unwrap(), None);
}
