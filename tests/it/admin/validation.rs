//! Malformed input is INVALID_ARGUMENT naming the field, before anything is read or written:
//! identifiers, paths, manifests, approvals, whitelist entries, groups, clients, audit filters,
//! the acting user and page tokens (one table; every case that does not hold is reported).

use consentry::proto::*;
use tonic::Code;

use super::*;
use crate::support::calls::{Cases, Who, ok};
use crate::support::db::{TestDb, postgres_tests};
use crate::support::fixtures::*;
use crate::support::server::TestServer;

postgres_tests!(malformed_input_is_invalid_argument_naming_the_field);

async fn malformed_input_is_invalid_argument_naming_the_field(db: &TestDb) {
    let (server, mut a) = TestServer::start_admin(db).await;
    let boot = Who::boot();
    let alice = boot.user("alice");
    let bob = boot.user("bob");
    acme(&mut a).await;
    register(
        &mut a,
        "crm",
        AppKind::Standard,
        manifest(
            &["documents:read"],
            &[
                (ScopeLevel::Web, Right::Write),
                (ScopeLevel::Tenancy, Right::Read),
            ],
        ),
    )
    .await;
    ok(
        a.create_permission_group(bob.r(group_req(ACME, "g1", &[], &["user:bob"], &[])))
            .await,
    );
    ok(
        a.create_external_permission(bob.r(permission_req(ACME, "g1", "p1", "P-1")))
            .await,
    );
    let events_before = all_events(&mut a).await.len();
    const IA: Code = Code::InvalidArgument;
    let mut cases = Cases::new("malformed input");

    // Identifiers and text.
    for bad in ["bad id", "", &"t".repeat(129), "tab\tid", "ümlaut"] {
        cases.check(
            format!("PutTenant with tenant_id {bad:?}"),
            a.put_tenant(boot.r(tenant_req(bad, "production", false)))
                .await,
            IA,
            "tenant_id",
        );
    }
    cases.check(
        "PutTenant with an empty environment",
        a.put_tenant(boot.r(tenant_req("new", "", false))).await,
        IA,
        "environment",
    );
    cases.check(
        "PutTenant with a newline in the environment",
        a.put_tenant(boot.r(tenant_req("new", "pro\nduction", false)))
            .await,
        IA,
        "environment",
    );
    cases.check(
        "PutUser with a space in user_id",
        a.put_user(boot.r(user_req(ACME, "bob smith", &[]))).await,
        IA,
        "user_id",
    );
    cases.check(
        "PutUser with an unspecified role",
        a.put_user(boot.r(PutUserRequest {
            roles: vec![0],
            ..user_req(ACME, "dave", &[])
        }))
        .await,
        IA,
        "roles[0]",
    );
    cases.check(
        "PutUser with an unknown role",
        a.put_user(boot.r(PutUserRequest {
            roles: vec![Role::Delegate.into(), 99],
            ..user_req(ACME, "dave", &[])
        }))
        .await,
        IA,
        "roles[1]",
    );

    // Paths: accepted or rejected, never normalised.
    let deep = "/a".repeat(33);
    let long = format!("/{}", "a".repeat(1024));
    for bad in [
        "/a/../b",
        "/a/./b",
        "/..",
        "a/b",
        "/a/",
        "//a",
        "/a//b",
        "",
        "/a\u{1}b",
        deep.as_str(),
        long.as_str(),
    ] {
        cases.check(
            format!("GrantUserRight at {bad:?}"),
            a.grant_user_right(boot.r(right_req(ACME, "carol", bad, Right::Read)))
                .await,
            IA,
            "resource",
        );
        cases.check(
            format!("RevokeUserRight at {bad:?}"),
            a.revoke_user_right(boot.r(RevokeUserRightRequest {
                tenant_id: ACME.into(),
                user_id: "carol".into(),
                resource: bad.to_owned(),
                right: Right::Read.into(),
            }))
            .await,
            IA,
            "resource",
        );
    }
    cases.check(
        "GrantUserRight of an unspecified right",
        a.grant_user_right(boot.r(GrantUserRightRequest {
            right: 0,
            ..right_req(ACME, "carol", "/hr", Right::Read)
        }))
        .await,
        IA,
        "right",
    );

    // Applications and manifests.
    let register_with = |app: &str, kind: i32, m: Option<Manifest>| RegisterAppRequest {
        app_id: app.to_owned(),
        name: "App".into(),
        kind,
        manifest: m,
    };
    let standard = i32::from(AppKind::Standard);
    cases.check(
        "RegisterApp with a bad app_id",
        a.register_app(boot.r(register_with(
            "bad app",
            standard,
            Some(Manifest::default()),
        )))
        .await,
        IA,
        "app_id",
    );
    cases.check(
        "RegisterApp of an unspecified kind",
        a.register_app(boot.r(register_with("new", 0, Some(Manifest::default()))))
            .await,
        IA,
        "kind",
    );
    cases.check(
        "RegisterApp without a name",
        a.register_app(boot.r(RegisterAppRequest {
            name: String::new(),
            ..register_with("new", standard, Some(Manifest::default()))
        }))
        .await,
        IA,
        "name",
    );
    cases.check(
        "RegisterApp without a manifest",
        a.register_app(boot.r(register_with("new", standard, None)))
            .await,
        IA,
        "manifest",
    );
    let bad_manifests = [
        (
            manifest(&["docs:read", "docs:read"], &[]),
            "manifest.scopes[1]",
        ),
        (manifest(&["docs read"], &[]), "manifest.scopes[0]"),
        (
            manifest(
                &[],
                &[
                    (ScopeLevel::Web, Right::Read),
                    (ScopeLevel::Web, Right::Write),
                ],
            ),
            "manifest.permission_requests[1]",
        ),
        (
            Manifest {
                permission_requests: vec![PermissionRequest {
                    scope_level: 0,
                    right: Right::Read.into(),
                }],
                ..Manifest::default()
            },
            "manifest.permission_requests[0].scope_level",
        ),
        (
            Manifest {
                permission_requests: vec![PermissionRequest {
                    scope_level: ScopeLevel::List.into(),
                    right: 0,
                }],
                ..Manifest::default()
            },
            "manifest.permission_requests[0].right",
        ),
        (
            Manifest {
                policy: Policy::AppOnly.into(),
                ..Manifest::default()
            },
            "manifest.policy",
        ),
        (
            Manifest {
                run_as: 7,
                ..Manifest::default()
            },
            "manifest.run_as",
        ),
    ];
    for (m, field) in bad_manifests {
        cases.check(
            format!("RegisterApp with a bad {field}"),
            a.register_app(boot.r(register_with("new", standard, Some(m.clone()))))
                .await,
            IA,
            field,
        );
        cases.check(
            format!("UpdateAppManifest with a bad {field}"),
            a.update_app_manifest(boot.r(UpdateAppManifestRequest {
                app_id: "crm".into(),
                manifest: Some(m),
            }))
            .await,
            IA,
            field,
        );
    }

    // Consent: the revision seen is required; each request is resolved exactly once, to a path
    // of its level's depth, no higher than requested.
    let web = |resource: &str| resolved(ScopeLevel::Web, Right::Write, resource);
    let root = resolved(ScopeLevel::Tenancy, Right::Read, "/");
    let bad_approvals = [
        (
            approve_req(ACME, "crm", 0, vec![web("/hr/team"), root.clone()]),
            "manifest_revision",
        ),
        (
            approve_req(ACME, "crm", -1, vec![web("/hr/team"), root.clone()]),
            "manifest_revision",
        ),
        (
            approve_req(ACME, "crm", 1, vec![web("/hr/../b"), root.clone()]),
            "resolved_requests[0].resource",
        ),
        (
            approve_req(
                ACME,
                "crm",
                1,
                vec![
                    ResolvedRequest {
                        scope_level: 0,
                        ..web("/hr/team")
                    },
                    root.clone(),
                ],
            ),
            "resolved_requests[0].scope_level",
        ),
        (
            approve_req(ACME, "crm", 1, vec![web("/hr"), root.clone()]),
            "resolved_requests[0]",
        ),
        (
            approve_req(
                ACME,
                "crm",
                1,
                vec![
                    resolved(ScopeLevel::Web, Right::Manage, "/hr/team"),
                    root.clone(),
                ],
            ),
            "resolved_requests[0]",
        ),
        (
            approve_req(ACME, "crm", 1, vec![web("/hr/team")]),
            "resolved_requests",
        ),
        (
            approve_req(
                ACME,
                "crm",
                1,
                vec![web("/hr/team"), root.clone(), web("/hr/web")],
            ),
            "resolved_requests[2]",
        ),
        (
            approve_req(
                ACME,
                "crm",
                1,
                vec![
                    web("/hr/team"),
                    root.clone(),
                    resolved(ScopeLevel::List, Right::Read, "/hr/team/docs"),
                ],
            ),
            "resolved_requests[2]",
        ),
    ];
    for (i, (request, field)) in bad_approvals.into_iter().enumerate() {
        cases.check(
            format!("ApproveConsent #{i} with a bad {field}"),
            a.approve_consent(alice.r(request)).await,
            IA,
            field,
        );
    }

    // Whitelist entries.
    cases.check(
        "PutWhitelistEntry with a repeated scope",
        a.put_whitelist_entry(alice.r(whitelist_req(
            ACME,
            "crm",
            &["documents:read", "documents:read"],
        )))
        .await,
        IA,
        "allowed_scopes[1]",
    );
    cases.check(
        "PutWhitelistEntry with an unknown content_access",
        a.put_whitelist_entry(alice.r(PutWhitelistEntryRequest {
            content_access: 9,
            ..whitelist_req(ACME, "crm", &[])
        }))
        .await,
        IA,
        "content_access",
    );

    // Groups and principals.
    let bad_groups = [
        (group_req(ACME, "g9", &[], &["bob"], &[]), "grantors[0]"),
        (
            group_req(ACME, "g9", &[], &["user:bob", "user:bob"], &[]),
            "grantors[1]",
        ),
        (
            group_req(ACME, "g9", &[], &[], &["group:x"]),
            "visible_to[0]",
        ),
        (group_req(ACME, "g9", &[], &[], &["app:"]), "visible_to[0]"),
        (
            group_req(ACME, "g9", &[], &[], &["user:bad user"]),
            "visible_to[0]",
        ),
        (
            group_req(ACME, "g9", &[("nobody", ManagerAccess::Read)], &[], &[]),
            "managers[0].principal",
        ),
        (
            CreatePermissionGroupRequest {
                managers: vec![Manager {
                    principal: "user:carol".into(),
                    access: 0,
                }],
                ..group_req(ACME, "g9", &[], &[], &[])
            },
            "managers[0].access",
        ),
        (group_req(ACME, "bad group", &[], &[], &[]), "group_id"),
        (
            CreatePermissionGroupRequest {
                name: String::new(),
                ..group_req(ACME, "g9", &[], &[], &[])
            },
            "name",
        ),
    ];
    for (i, (request, field)) in bad_groups.into_iter().enumerate() {
        cases.check(
            format!("CreatePermissionGroup #{i} with a bad {field}"),
            a.create_permission_group(bob.r(request.clone())).await,
            IA,
            field,
        );
        let update = UpdatePermissionGroupRequest {
            group_id: if field == "group_id" {
                request.group_id.clone()
            } else {
                "g1".into()
            },
            ..update_req(request)
        };
        cases.check(
            format!("UpdatePermissionGroup #{i} with a bad {field}"),
            a.update_permission_group(bob.r(update)).await,
            IA,
            field,
        );
    }

    // External permissions and grants.
    for (i, (request, field)) in [
        (permission_req(ACME, "g1", "p9", ""), "external_id"),
        (permission_req(ACME, "g1", "p9", "a\nb"), "external_id"),
        (
            permission_req(ACME, "g1", "p9", &"x".repeat(129)),
            "external_id",
        ),
        (
            permission_req(ACME, "g1", "bad perm", "P-9"),
            "permission_id",
        ),
        (permission_req(ACME, "bad group", "p9", "P-9"), "group_id"),
    ]
    .into_iter()
    .enumerate()
    {
        cases.check(
            format!("CreateExternalPermission #{i} with a bad {field}"),
            a.create_external_permission(bob.r(request)).await,
            IA,
            field,
        );
    }
    cases.check(
        "GrantExternalPermission with negative nanos in expires_at",
        a.grant_external_permission(bob.r(GrantExternalPermissionRequest {
            expires_at: Some(prost_types::Timestamp {
                seconds: now_secs(),
                nanos: -1,
            }),
            ..grant_req(ACME, "carol", "p1")
        }))
        .await,
        IA,
        "expires_at",
    );
    cases.check(
        "GrantExternalPermission to a bad user_id",
        a.grant_external_permission(bob.r(grant_req(ACME, "bad user", "p1")))
            .await,
        IA,
        "user_id",
    );

    // Clients.
    for (i, (request, field)) in [
        (client_req("svc", &[], &[Capability::Query]), "tenants"),
        (
            client_req("svc", &["*", ACME], &[Capability::Query]),
            "tenants",
        ),
        (
            client_req("svc", &[ACME, ACME], &[Capability::Query]),
            "tenants[1]",
        ),
        (
            client_req("svc", &["bad tenant"], &[Capability::Query]),
            "tenants[0]",
        ),
        (
            CreateClientRequest {
                capabilities: vec![0],
                ..client_req("svc", &[ACME], &[])
            },
            "capabilities[0]",
        ),
        (client_req("", &[ACME], &[Capability::Query]), "client_id"),
    ]
    .into_iter()
    .enumerate()
    {
        cases.check(
            format!("CreateClient #{i} with a bad {field}"),
            a.create_client(boot.r(request)).await,
            IA,
            field,
        );
    }
    cases.check(
        "RevokeClient of a bad client_id",
        a.revoke_client(boot.r(RevokeClientRequest {
            client_id: "bad client".into(),
        }))
        .await,
        IA,
        "client_id",
    );

    // Audit filters.
    for (i, (request, field)) in [
        (
            ListAuditEventsRequest {
                actor: "alice".into(),
                ..Default::default()
            },
            "actor",
        ),
        (
            ListAuditEventsRequest {
                actor: "group:x".into(),
                ..Default::default()
            },
            "actor",
        ),
        (
            ListAuditEventsRequest {
                tenant_id: "bad tenant".into(),
                ..Default::default()
            },
            "tenant_id",
        ),
        (
            ListAuditEventsRequest {
                since: Some(prost_types::Timestamp {
                    seconds: 0,
                    nanos: 2_000_000_000,
                }),
                ..Default::default()
            },
            "since",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        cases.check(
            format!("ListAuditEvents #{i} with a bad {field}"),
            a.list_audit_events(boot.r(request)).await,
            IA,
            field,
        );
    }

    // The acting user.
    cases.check(
        "a bad x-consentry-user",
        a.list_tenants(boot.user("bad user").r(ListTenantsRequest::default()))
            .await,
        IA,
        "x-consentry-user",
    );

    // Paging: a negative page size, and tokens that are not from this query.
    put_tenant(&mut a, "beta").await;
    let users_page = ok(a
        .list_users(boot.r(ListUsersRequest {
            tenant_id: ACME.into(),
            page_size: 1,
            ..Default::default()
        }))
        .await);
    let users_token = users_page.next_page_token;
    assert!(!users_token.is_empty());
    let apps_token = {
        register(&mut a, "tool", AppKind::Custom, Manifest::default()).await;
        ok(a.list_apps(boot.r(ListAppsRequest {
            page_size: 1,
            ..Default::default()
        }))
        .await)
        .next_page_token
    };
    assert!(!apps_token.is_empty());
    for (size, token, needle) in [
        (-1, String::new(), "page_size"),
        (10, "not-a-token".to_owned(), "page_token"),
        (10, apps_token.clone(), "page_token"),
    ] {
        let t = || token.clone();
        let tenant = || ACME.to_owned();
        cases.check(
            format!("ListTenants with page size {size} and token {token:?}"),
            a.list_tenants(boot.r(ListTenantsRequest {
                page_size: size,
                page_token: t(),
            }))
            .await,
            IA,
            needle,
        );
        cases.check(
            format!("ListClients with page size {size} and token {token:?}"),
            a.list_clients(boot.r(ListClientsRequest {
                page_size: size,
                page_token: t(),
            }))
            .await,
            IA,
            needle,
        );
        cases.check(
            format!("ListUsers with page size {size} and token {token:?}"),
            a.list_users(boot.r(ListUsersRequest {
                tenant_id: tenant(),
                page_size: size,
                page_token: t(),
            }))
            .await,
            IA,
            needle,
        );
        cases.check(
            format!("ListConsents with page size {size} and token {token:?}"),
            a.list_consents(boot.r(ListConsentsRequest {
                tenant_id: tenant(),
                page_size: size,
                page_token: t(),
            }))
            .await,
            IA,
            needle,
        );
        cases.check(
            format!("ListWhitelistEntries with page size {size} and token {token:?}"),
            a.list_whitelist_entries(boot.r(ListWhitelistEntriesRequest {
                tenant_id: tenant(),
                page_size: size,
                page_token: t(),
            }))
            .await,
            IA,
            needle,
        );
        cases.check(
            format!("ListPermissionGroups with page size {size} and token {token:?}"),
            a.list_permission_groups(bob.r(ListPermissionGroupsRequest {
                tenant_id: tenant(),
                page_size: size,
                page_token: t(),
            }))
            .await,
            IA,
            needle,
        );
        cases.check(
            format!("ListUserRights with page size {size} and token {token:?}"),
            a.list_user_rights(boot.r(ListUserRightsRequest {
                tenant_id: tenant(),
                user_id: "carol".into(),
                page_size: size,
                page_token: t(),
            }))
            .await,
            IA,
            needle,
        );
        cases.check(
            format!("ListAuditEvents with page size {size} and token {token:?}"),
            a.list_audit_events(boot.r(ListAuditEventsRequest {
                page_size: size,
                page_token: t(),
                ..Default::default()
            }))
            .await,
            IA,
            needle,
        );
    }
    cases.check(
        "ListApps with a negative page size",
        a.list_apps(boot.r(ListAppsRequest {
            page_size: -1,
            ..Default::default()
        }))
        .await,
        IA,
        "page_size",
    );
    cases.check(
        "ListApps with a ListUsers token",
        a.list_apps(boot.r(ListAppsRequest {
            page_size: 1,
            page_token: users_token.clone(),
        }))
        .await,
        IA,
        "page_token",
    );
    // The same listing for another tenant is another query.
    cases.check(
        "ListUsers of another tenant with a token of acme's",
        a.list_users(boot.r(ListUsersRequest {
            tenant_id: "beta".into(),
            page_size: 1,
            page_token: users_token.clone(),
        }))
        .await,
        IA,
        "page_token",
    );
    // With the same query, the token works.
    ok(a.list_users(boot.r(ListUsersRequest {
        tenant_id: ACME.into(),
        page_size: 1,
        page_token: users_token,
    }))
    .await);
    // A filtered audit listing's token is not valid for another filter.
    let audit_token = ok(a
        .list_audit_events(boot.r(ListAuditEventsRequest {
            tenant_id: ACME.into(),
            page_size: 1,
            ..Default::default()
        }))
        .await)
    .next_page_token;
    cases.check(
        "ListAuditEvents with another filter's token",
        a.list_audit_events(boot.r(ListAuditEventsRequest {
            page_size: 1,
            page_token: audit_token,
            ..Default::default()
        }))
        .await,
        IA,
        "page_token",
    );
    // Only `tool` and `beta` were written since; nothing that failed validation was.
    let after = all_events(&mut a).await.len();
    cases.expect(
        "nothing that failed validation was written",
        after == events_before + 2,
        format!("{events_before} audit events before, {after} after two writes"),
    );
    cases.finish();
    server.stop().await;
}
