//! Applications, consent and whitelisting: apps are registered, updated and unregistered by app
//! managers; STANDARD apps are approved by tenant administrators, CUSTOM apps first activated by
//! app managers; whitelist entries are kept by tenant administrators.

use super::*;
use crate::support::db::{TestDb, backend_tests};

backend_tests!(
    apps_are_registered_updated_and_unregistered_by_app_managers,
    standard_apps_are_approved_by_tenant_administrators,
    custom_apps_are_first_activated_by_app_managers,
    whitelist_entries_are_kept_by_tenant_administrators,
);

async fn apps_are_registered_updated_and_unregistered_by_app_managers(db: &TestDb) {
    let store = db.store().await;
    let s: &dyn Store = &store;
    let crm = aid("crm");
    let m1 = manifest(&["documents:read"], &[(ScopeLevel::Web, Right::Write)]);
    let no_manager = caller("ops", TenantBounds::All, &[Capability::Admin]);
    let bounded_manager = caller(
        "acme-apps",
        only(&["acme"]),
        &[Capability::Admin, Capability::AppManager],
    );

    // RegisterApp needs app_manager on `*`.
    refused!(
        s,
        s.register_app(
            &ctx(&no_manager, None, 0),
            &crm,
            &name("CRM"),
            AppKind::Standard,
            &m1
        ),
        denied!()
    );
    refused!(
        s,
        s.register_app(
            &ctx(&bounded_manager, None, 0),
            &crm,
            &name("CRM"),
            AppKind::Standard,
            &m1
        ),
        denied!()
    );
    let (_, ev) = wrote!(
        s,
        s.register_app(&by_root(), &crm, &name("CRM"), AppKind::Standard, &m1)
    );
    assert_eq!(ev.action, "RegisterApp");
    assert_eq!(ev.tenant_id, None);
    assert_eq!(ev.target, "app:crm");
    assert_eq!(ev.before, None);
    let after = parsed(&ev.after);
    assert_eq!(after["kind"], "STANDARD");
    assert_eq!(after["manifest_revision"], 1);
    assert_eq!(after["manifest"]["scopes"], json!(["documents:read"]));
    assert_eq!(
        after["manifest"]["permission_requests"],
        json!([{"scope_level": "WEB", "right": "WRITE"}])
    );
    refused!(
        s,
        s.register_app(
            &by_root(),
            &crm,
            &name("CRM 2"),
            AppKind::Custom,
            &Manifest::default()
        ),
        StoreError::AlreadyExists(_)
    );

    // UpdateAppManifest bumps the manifest revision.
    let m2 = manifest(
        &["documents:read", "documents:write"],
        &[(ScopeLevel::Web, Right::Write)],
    );
    refused!(
        s,
        s.update_app_manifest(&by_root(), &aid("ghost"), &m2),
        StoreError::NotFound(_)
    );
    refused!(
        s,
        s.update_app_manifest(&ctx(&no_manager, None, 0), &crm, &m2),
        denied!()
    );
    let ((written, manifest_revision), ev) =
        wrote!(s, s.update_app_manifest(&by_root(), &crm, &m2));
    assert_eq!(manifest_revision, 2);
    assert_eq!(ev.action, "UpdateAppManifest");
    assert_eq!(parsed(&ev.before)["manifest_revision"], 1);
    assert_eq!(parsed(&ev.after)["manifest_revision"], 2);
    assert_eq!(
        parsed(&ev.after)["manifest"]["scopes"],
        json!(["documents:read", "documents:write"])
    );
    // An identical manifest changes nothing: no manifest revision, no write, no event.
    let (unchanged, manifest_revision) =
        s.update_app_manifest(&by_root(), &crm, &m2).await.unwrap();
    assert_eq!(manifest_revision, 2);
    assert_eq!(unchanged, written);
    check_untouched(s, written).await;

    let snap = snapshot(s, "nowhere", "crm").await;
    assert_eq!(snap.tenant, None);
    let app = snap.app.unwrap();
    assert_eq!(
        (app.name, app.kind, app.manifest, app.manifest_revision),
        (name("CRM"), AppKind::Standard, m2.clone(), 2)
    );
    assert_eq!(snapshot(s, "nowhere", "ghost").await.app, None);

    // UnregisterApp takes the app's consents and whitelist entries with it.
    tenant_with_admin(s, "acme", "alice").await;
    tenant_with_admin(s, "globex", "zed").await;
    register(s, "other", AppKind::Standard, &Manifest::default()).await;
    let resolved = || vec![rr(ScopeLevel::Web, Right::Read, "/hr/web1")];
    s.approve_consent(&by("alice"), &tid("acme"), &crm, 2, resolved())
        .await
        .unwrap();
    s.approve_consent(&by("zed"), &tid("globex"), &crm, 2, resolved())
        .await
        .unwrap();
    s.approve_consent(&by("alice"), &tid("acme"), &aid("other"), 1, vec![])
        .await
        .unwrap();
    s.put_whitelist_entry(&by("alice"), &tid("acme"), &crm, &WhitelistEntry::default())
        .await
        .unwrap();
    refused!(
        s,
        s.unregister_app(&ctx(&no_manager, None, 0), &crm),
        denied!()
    );
    refused!(
        s,
        s.unregister_app(&by_root(), &aid("ghost")),
        StoreError::NotFound(_)
    );
    let (_, ev) = wrote!(s, s.unregister_app(&by_root(), &crm));
    assert_eq!(
        (ev.action.as_str(), ev.target.as_str()),
        ("UnregisterApp", "app:crm")
    );
    assert_eq!(ev.tenant_id, None);
    assert_eq!(ev.after, None);
    let before = parsed(&ev.before);
    assert_eq!(before["manifest_revision"], 2);
    let consents = before["consents"].as_array().unwrap();
    assert_eq!(
        consents
            .iter()
            .map(|c| (
                c["tenant_id"].as_str().unwrap(),
                c["approved_by"].as_str().unwrap()
            ))
            .collect::<Vec<_>>(),
        [("acme", "user:alice"), ("globex", "user:zed")]
    );
    assert_eq!(
        before["whitelist_entries"],
        json!([{"tenant_id": "acme", "app_id": "crm", "allowed_scopes": [], "content_access": "OWN_CONTENT"}])
    );

    let snap = snapshot(s, "acme", "crm").await;
    assert!(snap.tenant.is_some());
    assert_eq!((snap.app, snap.consent, snap.whitelist), (None, None, None));
    let (consents, _) = all_pages!(10, |page| {
        s.list_consents(&tid("acme"), &page).await.unwrap()
    });
    assert_eq!(
        consents
            .iter()
            .map(|(a, _)| a.to_string())
            .collect::<Vec<_>>(),
        ["other"]
    );
    let (entries, _) = all_pages!(10, |page| {
        s.list_whitelist_entries(&tid("acme"), &page).await.unwrap()
    });
    assert!(entries.is_empty());
    let (apps, _) = all_pages!(10, |page| s.list_apps(&page).await.unwrap());
    assert_eq!(
        apps.iter()
            .map(|a| a.app_id.to_string())
            .collect::<Vec<_>>(),
        ["other"]
    );

    // The id may be registered again: a new app, with none of the old consents.
    wrote!(
        s,
        s.register_app(&by_root(), &crm, &name("CRM"), AppKind::Standard, &m1)
    );
    let snap = snapshot(s, "globex", "crm").await;
    assert_eq!(snap.app.as_ref().unwrap().manifest_revision, 1);
    assert_eq!(snap.consent, None);
    assert_eq!(snap.consent_state(), &ConsentState::NotConsented);
}

async fn standard_apps_are_approved_by_tenant_administrators(db: &TestDb) {
    let store = db.store().await;
    let s: &dyn Store = &store;
    let (acme, crm) = (tid("acme"), aid("crm"));
    tenant_with_admin(s, "acme", "alice").await;
    plain_users(s, "acme", &["bob"]).await;
    let m1 = manifest(
        &["documents:read", "calendar:read"],
        &[
            (ScopeLevel::Web, Right::Write),
            (ScopeLevel::Tenancy, Right::Read),
        ],
    );
    register(s, "crm", AppKind::Standard, &m1).await;
    register(s, "other", AppKind::Standard, &Manifest::default()).await;
    let good = || {
        vec![
            rr(ScopeLevel::Web, Right::Read, "/hr/web1"),
            rr(ScopeLevel::Tenancy, Right::Read, "/"),
        ]
    };
    assert_eq!(
        snapshot(s, "acme", "crm").await.consent_state(),
        &ConsentState::NotConsented
    );

    // Only an acting administrator approves a STANDARD app (app_manager is not enough).
    refused!(
        s,
        s.approve_consent(&by_root(), &acme, &crm, 1, good()),
        denied!()
    );
    refused!(
        s,
        s.approve_consent(&by("bob"), &acme, &crm, 1, good()),
        denied!()
    );
    // The approver names the manifest revision they saw.
    refused!(
        s,
        s.approve_consent(&by("alice"), &acme, &crm, 2, good()),
        StoreError::Aborted(_)
    );
    refused!(
        s,
        s.approve_consent(&by("alice"), &acme, &crm, 0, good()),
        StoreError::Aborted(_)
    );
    // Resolved requests must fit the manifest.
    refused!(
        s,
        s.approve_consent(
            &by("alice"),
            &acme,
            &crm,
            1,
            vec![rr(ScopeLevel::Web, Right::Read, "/hr/web1")]
        ),
        StoreError::Invalid(_)
    );
    refused!(
        s,
        s.approve_consent(
            &by("alice"),
            &acme,
            &crm,
            1,
            vec![
                rr(ScopeLevel::Web, Right::Read, "/hr"),
                rr(ScopeLevel::Tenancy, Right::Read, "/")
            ]
        ),
        StoreError::Invalid(_)
    );
    refused!(
        s,
        s.approve_consent(
            &by("alice"),
            &acme,
            &crm,
            1,
            vec![
                rr(ScopeLevel::Web, Right::Manage, "/hr/web1"),
                rr(ScopeLevel::Tenancy, Right::Read, "/")
            ]
        ),
        StoreError::Invalid(_)
    );
    refused!(
        s,
        s.approve_consent(
            &by("alice"),
            &acme,
            &crm,
            1,
            vec![
                rr(ScopeLevel::Web, Right::Read, "/hr/web1"),
                rr(ScopeLevel::Tenancy, Right::Read, "/"),
                rr(ScopeLevel::List, Right::Read, "/hr/web1/docs")
            ]
        ),
        StoreError::Invalid(_)
    );
    refused!(
        s,
        s.approve_consent(&by("alice"), &acme, &aid("ghost"), 1, vec![]),
        StoreError::NotFound(_)
    );
    refused!(
        s,
        s.approve_consent(&by("alice"), &tid("initech"), &crm, 1, good()),
        StoreError::NotFound(_)
    );

    let ((_, consent), ev) = wrote!(
        s,
        s.approve_consent(&ctx(&root(), Some("alice"), 10), &acme, &crm, 1, good())
    );
    let expected = Consent {
        approved_by: principal("user:alice"),
        approved_at: at(10),
        approved_manifest_revision: 1,
        approved_manifest: m1.clone(),
        resolved_requests: vec![
            rr(ScopeLevel::Tenancy, Right::Read, "/"),
            rr(ScopeLevel::Web, Right::Read, "/hr/web1"),
        ],
        app_rights: Vec::new(),
        revoked_at: None,
    };
    assert_eq!(consent, expected);
    assert_eq!(ev.action, "ApproveConsent");
    assert_eq!(ev.tenant_id, Some(acme.clone()));
    assert_eq!(ev.target, "app:crm");
    assert_eq!(ev.before, None);
    let after = parsed(&ev.after);
    assert_eq!(after["approved_by"], "user:alice");
    assert_eq!(after["approved_manifest_revision"], 1);
    assert_eq!(after["approved_at"], at(10).as_micros());
    assert_eq!(after["revoked_at"], Value::Null);
    assert_eq!(after["resolved_requests"].as_array().unwrap().len(), 2);
    let snap = snapshot(s, "acme", "crm").await;
    assert_eq!(snap.consent, Some(expected));
    assert_eq!(snap.consent_state(), &ConsentState::Approved);
    assert_eq!(
        snap.effective().unwrap().scopes,
        scopes(&["calendar:read", "documents:read"])
    );

    // An escalation needs re-approval, of the manifest as it is now.
    let m2 = Manifest {
        webhooks: true,
        ..m1.clone()
    };
    let (_, manifest_revision) = s.update_app_manifest(&by_root(), &crm, &m2).await.unwrap();
    assert_eq!(manifest_revision, 2);
    assert_eq!(
        snapshot(s, "acme", "crm").await.consent_state(),
        &ConsentState::ReapprovalRequired(vec![ReapprovalReason::WebhooksAdded])
    );
    refused!(
        s,
        s.approve_consent(&by("alice"), &acme, &crm, 1, good()),
        StoreError::Aborted(_)
    );
    let again = vec![
        rr(ScopeLevel::Web, Right::Write, "/fin/web2"),
        rr(ScopeLevel::Tenancy, Right::Read, "/"),
    ];
    let ((_, consent), ev) = wrote!(
        s,
        s.approve_consent(&ctx(&root(), Some("alice"), 20), &acme, &crm, 2, again)
    );
    // Approving again replaces the snapshot.
    assert_eq!(consent.approved_manifest_revision, 2);
    assert_eq!(consent.approved_manifest, m2);
    assert_eq!(consent.approved_at, at(20));
    assert_eq!(
        consent.resolved_requests,
        [
            rr(ScopeLevel::Tenancy, Right::Read, "/"),
            rr(ScopeLevel::Web, Right::Write, "/fin/web2"),
        ]
    );
    assert_eq!(parsed(&ev.before)["approved_manifest_revision"], 1);
    assert_eq!(parsed(&ev.after)["approved_manifest_revision"], 2);
    let snap = snapshot(s, "acme", "crm").await;
    assert_eq!(snap.consent.as_ref(), Some(&consent));
    assert_eq!(snap.consent_state(), &ConsentState::Approved);
    let (consents, _) = all_pages!(10, |page| s.list_consents(&acme, &page).await.unwrap());
    assert_eq!(consents, [(crm.clone(), consent.clone())]);

    // Revoking needs an acting administrator too (app_manager only counts for CUSTOM apps).
    refused!(s, s.revoke_consent(&by_root(), &acme, &crm), denied!());
    refused!(s, s.revoke_consent(&by("bob"), &acme, &crm), denied!());
    let (_, ev) = wrote!(
        s,
        s.revoke_consent(&ctx(&root(), Some("alice"), 30), &acme, &crm)
    );
    assert_eq!(ev.action, "RevokeConsent");
    assert_eq!(parsed(&ev.before)["revoked_at"], Value::Null);
    assert_eq!(parsed(&ev.after)["revoked_at"], at(30).as_micros());
    let snap = snapshot(s, "acme", "crm").await;
    assert_eq!(snap.consent_state(), &ConsentState::Revoked);
    assert_eq!(snap.consent.as_ref().unwrap().revoked_at, Some(at(30)));
    assert_eq!(snap.effective(), None);
    refused!(
        s,
        s.revoke_consent(&by("alice"), &acme, &crm),
        StoreError::NotFound(_)
    );
    refused!(
        s,
        s.revoke_consent(&by("alice"), &acme, &aid("other")),
        StoreError::NotFound(_)
    );
    refused!(
        s,
        s.revoke_consent(&by("alice"), &acme, &aid("ghost")),
        StoreError::NotFound(_)
    );

    // Approving again reinstates it.
    let ((_, consent), _) = wrote!(
        s,
        s.approve_consent(&ctx(&root(), Some("alice"), 40), &acme, &crm, 2, good())
    );
    assert_eq!(consent.revoked_at, None);
    let snap = snapshot(s, "acme", "crm").await;
    assert_eq!(snap.consent_state(), &ConsentState::Approved);
    assert_eq!(snap.consent.unwrap().approved_at, at(40));
}

async fn custom_apps_are_first_activated_by_app_managers(db: &TestDb) {
    let store = db.store().await;
    let s: &dyn Store = &store;
    let (acme, tool) = (tid("acme"), aid("tool"));
    tenant_with_admin(s, "acme", "alice").await;
    let m = manifest(&["files:read"], &[]);
    register(s, "tool", AppKind::Custom, &m).await;
    let plain_admin = caller("ops", TenantBounds::All, &[Capability::Admin]);
    let deployer = caller(
        "deployer",
        only(&["acme"]),
        &[Capability::Admin, Capability::AppManager],
    );

    refused!(
        s,
        s.approve_consent(&ctx(&plain_admin, None, 0), &acme, &tool, 1, vec![]),
        denied!()
    );
    // The first activation by an app_manager client is recorded as the client's.
    let ((_, consent), ev) = wrote!(
        s,
        s.approve_consent(&ctx(&deployer, None, 5), &acme, &tool, 1, vec![])
    );
    assert_eq!(consent.approved_by, principal("client:deployer"));
    assert_eq!(consent.approved_at, at(5));
    assert_eq!(ev.actor_client, "deployer");
    assert_eq!(ev.actor_user, None);
    assert_eq!(parsed(&ev.after)["approved_by"], "client:deployer");
    let snap = snapshot(s, "acme", "tool").await;
    assert_eq!(snap.consent_state(), &ConsentState::Approved);
    assert_eq!(
        snap.consent.unwrap().approved_by,
        principal("client:deployer")
    );

    // Any later approval needs an administrator.
    refused!(
        s,
        s.approve_consent(&ctx(&deployer, None, 0), &acme, &tool, 1, vec![]),
        denied!()
    );
    // app_manager may revoke a CUSTOM app's consent; an admin client alone may not.
    refused!(
        s,
        s.revoke_consent(&ctx(&plain_admin, None, 0), &acme, &tool),
        denied!()
    );
    wrote!(s, s.revoke_consent(&ctx(&deployer, None, 6), &acme, &tool));
    assert_eq!(
        snapshot(s, "acme", "tool").await.consent_state(),
        &ConsentState::Revoked
    );
    // Reactivation after revocation is for an administrator only.
    refused!(
        s,
        s.approve_consent(&ctx(&deployer, None, 0), &acme, &tool, 1, vec![]),
        denied!()
    );
    let ((_, consent), _) = wrote!(
        s,
        s.approve_consent(&ctx(&deployer, Some("alice"), 7), &acme, &tool, 1, vec![])
    );
    assert_eq!(consent.approved_by, principal("user:alice"));
    assert_eq!(
        snapshot(s, "acme", "tool").await.consent_state(),
        &ConsentState::Approved
    );

    // Consent is never copied between tenants: in another tenant it is a first activation.
    s.put_tenant(&by_root(), &tenant("acme-stage", "stage", false))
        .await
        .unwrap();
    assert_eq!(
        snapshot(s, "acme-stage", "tool").await.consent_state(),
        &ConsentState::NotConsented
    );
    let ((_, consent), _) = wrote!(
        s,
        s.approve_consent(&by_root(), &tid("acme-stage"), &tool, 1, vec![])
    );
    assert_eq!(consent.approved_by, principal("client:root"));
}

async fn whitelist_entries_are_kept_by_tenant_administrators(db: &TestDb) {
    let store = db.store().await;
    let s: &dyn Store = &store;
    let (acme, crm) = (tid("acme"), aid("crm"));
    tenant_with_admin(s, "acme", "alice").await;
    plain_users(s, "acme", &["bob"]).await;
    register(
        s,
        "crm",
        AppKind::Standard,
        &manifest(&["documents:read"], &[]),
    )
    .await;
    let entry = WhitelistEntry {
        allowed_scopes: scopes(&["documents:read"]),
        content_access: ContentAccess::OnBehalfOfManagedUsers,
    };

    refused!(
        s,
        s.put_whitelist_entry(&by_root(), &acme, &crm, &entry),
        denied!()
    );
    refused!(
        s,
        s.put_whitelist_entry(&by("bob"), &acme, &crm, &entry),
        denied!()
    );
    refused!(
        s,
        s.put_whitelist_entry(&by("alice"), &acme, &aid("ghost"), &entry),
        StoreError::NotFound(_)
    );
    refused!(
        s,
        s.put_whitelist_entry(&by("alice"), &tid("initech"), &crm, &entry),
        StoreError::NotFound(_)
    );
    let (_, ev) = wrote!(s, s.put_whitelist_entry(&by("alice"), &acme, &crm, &entry));
    assert_eq!(ev.action, "PutWhitelistEntry");
    assert_eq!(ev.target, "app:crm");
    assert_eq!(ev.tenant_id, Some(acme.clone()));
    assert_eq!(ev.before, None);
    assert_eq!(
        parsed(&ev.after),
        json!({"app_id": "crm", "allowed_scopes": ["documents:read"], "content_access": "ON_BEHALF_OF_MANAGED_USERS"})
    );
    let snap = snapshot(s, "acme", "crm").await;
    assert_eq!(snap.whitelist.as_ref(), Some(&entry));
    // An entry may be prepared while whitelisting is off; it takes effect only when it is on.
    assert_eq!(snap.content_access(), ContentAccess::OwnContent);

    // Put replaces.
    let replacement = WhitelistEntry::default();
    let (_, ev) = wrote!(
        s,
        s.put_whitelist_entry(&by("alice"), &acme, &crm, &replacement)
    );
    assert_eq!(
        parsed(&ev.before)["allowed_scopes"],
        json!(["documents:read"])
    );
    assert_eq!(parsed(&ev.after)["allowed_scopes"], json!([]));
    assert_eq!(
        snapshot(s, "acme", "crm").await.whitelist,
        Some(replacement.clone())
    );
    let (entries, _) = all_pages!(10, |page| {
        s.list_whitelist_entries(&acme, &page).await.unwrap()
    });
    assert_eq!(entries, [(crm.clone(), replacement.clone())]);
    wrote!(s, s.put_whitelist_entry(&by("alice"), &acme, &crm, &entry));
    s.put_tenant(&by("alice"), &tenant("acme", "production", true))
        .await
        .unwrap();
    let snap = snapshot(s, "acme", "crm").await;
    assert!(snap.whitelisting_enabled());
    assert!(!snap.blocked_by_whitelist());
    assert_eq!(snap.content_access(), ContentAccess::OnBehalfOfManagedUsers);

    // Delete.
    refused!(
        s,
        s.delete_whitelist_entry(&by("bob"), &acme, &crm),
        denied!()
    );
    refused!(
        s,
        s.delete_whitelist_entry(&by_root(), &acme, &crm),
        denied!()
    );
    let (_, ev) = wrote!(s, s.delete_whitelist_entry(&by("alice"), &acme, &crm));
    assert_eq!(ev.action, "DeleteWhitelistEntry");
    assert_eq!(
        parsed(&ev.before)["content_access"],
        "ON_BEHALF_OF_MANAGED_USERS"
    );
    assert_eq!(ev.after, None);
    let snap = snapshot(s, "acme", "crm").await;
    assert_eq!(snap.whitelist, None);
    assert!(snap.blocked_by_whitelist());
    refused!(
        s,
        s.delete_whitelist_entry(&by("alice"), &acme, &crm),
        StoreError::NotFound(_)
    );
    refused!(
        s,
        s.delete_whitelist_entry(&by("alice"), &tid("initech"), &crm),
        StoreError::NotFound(_)
    );
}
