//! Benchmarks of the pure decision engine: the time one `check_access` call takes against a
//! realistic, already-loaded snapshot (what a cache hit costs, docs/rules.md §9.3), next to two
//! baselines — one `HashMap` lookup of the resource path, and `UserSnapshot::right_at` alone —
//! so the figures can be reported as ratios.
//!
//! The snapshot:
//! * tenant `acme`, whitelisting enabled, `crm` whitelisted for every consented scope on behalf
//!   of managed users;
//! * `crm`, approved at manifest revision 1 and unchanged since, with **20 grants**: a manifest
//!   (approved and current alike) of 20 API scopes `api:00` … `api:19`, every one of them
//!   effective. Its permission requests are at most one per scope level, so beside the 20 scopes
//!   the effective grant also holds the 4 resolved requests a manifest can have at most (TENANCY
//!   READ on `/`, SITE_COLLECTION WRITE on `/s04`, WEB MANAGE on `/s04/w02`, LIST FULL_CONTROL on
//!   `/s04/w02/l01`);
//! * user `alice` with 200 rights spread over a tree of 10 site collections × 5 webs × 3 lists
//!   (the first 200 of its 210 nodes in depth-first order, levels cycling READ, WRITE, MANAGE,
//!   FULL_CONTROL; so she holds READ on `/s04`, WRITE on each of its webs, FULL_CONTROL on
//!   `/s04/w02/l01`), `bob`, a DELEGATE, for the on-behalf-of query, and `erin`, an API user
//!   (docs/rules.md §8) without roles, narrowed to `api:00` … `api:09` and acting with `as_user`,
//!   for the same query as an API user.
//!
//! Run: `cargo bench --bench engine -- --warm-up-time 1 --measurement-time 3`.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::hint::black_box;

use consentry::domain::{
    AccessQuery, ApiUser, AppKind, AppSnapshot, ContentAccess, RawAccessQuery, Reason,
    ResourcePath, Right, Role, RoleSet, ScopeLevel, Timestamp, UserFacts, UserSnapshot,
    WhitelistEntry, check_access,
};
use consentry::testing::{self, path};
use criterion::{Criterion, criterion_group, criterion_main};

/// The app snapshot described in the module documentation.
fn app_snapshot() -> AppSnapshot {
    let scopes: Vec<String> = (0..20).map(|i| format!("api:{i:02}")).collect();
    let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
    let requests = [
        (ScopeLevel::Tenancy, Right::Read, "/"),
        (ScopeLevel::SiteCollection, Right::Write, "/s04"),
        (ScopeLevel::Web, Right::Manage, "/s04/w02"),
        (ScopeLevel::List, Right::FullControl, "/s04/w02/l01"),
    ];
    let levels: Vec<(ScopeLevel, Right)> = requests.iter().map(|&(l, r, _)| (l, r)).collect();
    let manifest = testing::manifest(&scopes, &levels);
    let consent = testing::consent(
        &manifest,
        1,
        requests
            .iter()
            .map(|&(level, right, resource)| testing::resolved(level, right, resource))
            .collect(),
        Timestamp::from_micros(1_700_000_000_000_000),
    );
    AppSnapshot::new(
        Some(testing::tenant("acme", "production", true)),
        Some(testing::app("crm", AppKind::Standard, manifest, 1)),
        Some(consent),
        Some(WhitelistEntry {
            allowed_scopes: Default::default(),
            content_access: ContentAccess::OnBehalfOfManagedUsers,
        }),
    )
}

/// 200 rights over `/sNN`, `/sNN/wMM`, `/sNN/wMM/lKK` (10 × 5 × 3 tree, 210 nodes).
fn user_rights() -> Vec<(ResourcePath, Right)> {
    let mut nodes = Vec::new();
    for s in 0..10 {
        nodes.push(format!("/s{s:02}"));
        for w in 0..5 {
            nodes.push(format!("/s{s:02}/w{w:02}"));
            for l in 0..3 {
                nodes.push(format!("/s{s:02}/w{w:02}/l{l:02}"));
            }
        }
    }
    nodes
        .iter()
        .take(200)
        .enumerate()
        .map(|(i, p)| (path(p), Right::ALL[i % 4]))
        .collect()
}

fn query(raw: RawAccessQuery<'_>) -> AccessQuery {
    AccessQuery::parse(&RawAccessQuery {
        tenant_id: "acme",
        app_id: "crm",
        ..raw
    })
    .unwrap()
}

fn bench_engine(c: &mut Criterion) {
    let snapshot = app_snapshot();
    let rights = user_rights();
    assert_eq!(rights.len(), 200);
    let alice = UserSnapshot::new(RoleSet::EMPTY, rights.clone());
    let bob = testing::user(&[Role::Delegate], &[]);
    let erin = testing::user(&[], &[]).with_api_user(ApiUser {
        scopes: (0..10)
            .map(|i| testing::scope(&format!("api:{i:02}")))
            .collect(),
        as_user: true,
    });
    let map: HashMap<ResourcePath, Right> = rights.into_iter().collect();
    let deep = path("/s04/w02/l01/folder/item");

    // alice holds FULL_CONTROL on /s04/w02/l01; the app FULL_CONTROL there too.
    let allowed_deep = query(RawAccessQuery {
        user_id: "alice",
        permission: "EDIT_ITEMS",
        resource: deep.as_str(),
        ..Default::default()
    });
    let scope_only = query(RawAccessQuery {
        user_id: "alice",
        scope: "api:17",
        ..Default::default()
    });
    // The app holds WRITE on /s04 and below, alice only READ on /s04 and nothing more on
    // /s04/docs: the last step refuses.
    let denied_deep = query(RawAccessQuery {
        user_id: "alice",
        permission: "ADD_ITEMS",
        resource: "/s04/docs/reports/q3",
        ..Default::default()
    });
    let on_behalf = query(RawAccessQuery {
        user_id: "bob",
        on_behalf_of: "alice",
        scope: "api:05",
        permission: "EDIT_ITEMS",
        resource: deep.as_str(),
        ..Default::default()
    });
    let api_user_on_behalf = AccessQuery {
        user_id: Some(testing::uid("erin")),
        ..on_behalf.clone()
    };
    let explained = AccessQuery {
        explain: true,
        ..allowed_deep.clone()
    };

    let users = UserFacts {
        user: Some(&alice),
        target: None,
    };
    let obo_users = UserFacts {
        user: Some(&bob),
        target: Some(&alice),
    };
    let api_user_users = UserFacts {
        user: Some(&erin),
        target: Some(&alice),
    };
    // The cases must decide as described, or the figures measure something else.
    for (q, facts, want) in [
        (&allowed_deep, users, Reason::Allowed),
        (&scope_only, users, Reason::Allowed),
        (&denied_deep, users, Reason::UserPermissionInsufficient),
        (&on_behalf, obo_users, Reason::Allowed),
        (&api_user_on_behalf, api_user_users, Reason::Allowed),
        (&explained, users, Reason::Allowed),
    ] {
        assert_eq!(check_access(q, &snapshot, facts).reason, want);
    }

    let mut group = c.benchmark_group("engine");
    group.bench_function("baseline/hashmap_get_path", |b| {
        b.iter(|| black_box(&map).get(black_box(&deep)).copied())
    });
    group.bench_function("baseline/user_right_at_deep_path", |b| {
        b.iter(|| black_box(&alice).right_at(black_box(&deep)))
    });
    group.bench_function("check/allowed_user_and_app_deep_path", |b| {
        b.iter(|| check_access(black_box(&allowed_deep), black_box(&snapshot), users))
    });
    group.bench_function("check/scope_only", |b| {
        b.iter(|| check_access(black_box(&scope_only), black_box(&snapshot), users))
    });
    group.bench_function("check/denied_user_permission_deep_path", |b| {
        b.iter(|| check_access(black_box(&denied_deep), black_box(&snapshot), users))
    });
    group.bench_function("check/allowed_on_behalf_of", |b| {
        b.iter(|| check_access(black_box(&on_behalf), black_box(&snapshot), obo_users))
    });
    group.bench_function("check/allowed_api_user_as_user", |b| {
        b.iter(|| {
            check_access(
                black_box(&api_user_on_behalf),
                black_box(&snapshot),
                api_user_users,
            )
        })
    });
    group.bench_function("check/allowed_deep_path_explain", |b| {
        b.iter(|| check_access(black_box(&explained), black_box(&snapshot), users))
    });
    group.bench_function("parse_and_check/allowed_deep_path", |b| {
        b.iter(|| {
            let q = AccessQuery::parse(black_box(&RawAccessQuery {
                tenant_id: "acme",
                app_id: "crm",
                user_id: "alice",
                permission: "EDIT_ITEMS",
                resource: "/s04/w02/l01/folder/item",
                ..Default::default()
            }))
            .unwrap();
            check_access(&q, black_box(&snapshot), users)
        })
    });
    group.bench_function("snapshot/build_app_snapshot", |b| {
        b.iter_batched(
            || {
                (
                    snapshot.tenant.clone(),
                    snapshot.app.clone(),
                    snapshot.consent.clone(),
                    snapshot.whitelist.clone(),
                )
            },
            |(t, a, c, w)| AppSnapshot::new(t, a, c, w),
            criterion::BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench_engine);
criterion_main!(benches);
