//! The generators of worlds and queries over the pools (DESIGN.md §2 domain model, §3 query):
//! manifests, consents consistent with the manifest they approved, whitelist entries, users
//! (some of them API users) and queries.

use std::collections::HashMap;

use proptest::sample::{select, subsequence};

use super::*;

/// Every name a check may ask for: the four levels and the 19 fine-grained permissions.
fn permission_names() -> Vec<&'static str> {
    Right::ALL
        .iter()
        .map(|r| r.as_str())
        .chain(FinePermission::ALL.iter().map(|p| p.as_str()))
        .collect()
}

pub(super) fn right() -> impl Strategy<Value = Right> {
    select(Right::ALL.to_vec())
}

pub(super) fn role_set() -> impl Strategy<Value = RoleSet> {
    prop::array::uniform4(prop::bool::weighted(0.25)).prop_map(|picked| {
        RoleSet::of(
            Role::ALL
                .into_iter()
                .zip(picked)
                .filter_map(|(r, on)| on.then_some(r)),
        )
    })
}

pub(super) fn rights() -> impl Strategy<Value = Vec<(&'static str, Right)>> {
    prop::collection::vec((select(PATHS.to_vec()), right()), 0..4)
}

fn manifest() -> impl Strategy<Value = Manifest> {
    (
        prop::bool::weighted(0.15),
        prop::bool::weighted(0.15),
        prop::bool::weighted(0.15),
        subsequence(SCOPES.to_vec(), 0..=SCOPES.len()),
        prop::array::uniform4(prop::option::weighted(0.5, right())),
        any::<bool>(),
        prop::bool::weighted(0.3),
    )
        .prop_map(
            |(system_user, webhooks, mirroring, scopes, requests, app_only, user_only)| Manifest {
                run_as: if system_user {
                    RunAs::SystemUser
                } else {
                    RunAs::UserContext
                },
                webhooks,
                database_mirroring: mirroring,
                scopes: scopes.into_iter().map(scope).collect(),
                permission_requests: ScopeLevel::ALL
                    .into_iter()
                    .zip(requests)
                    .filter_map(|(level, r)| Some((level, r?)))
                    .collect(),
                allow_app_only: app_only,
                policy: if user_only {
                    Policy::UserOnly
                } else {
                    Policy::UserAndApp
                },
            },
        )
}

/// Takes each part of the manifest from `other` where `take` says so, else from `base`.
fn mix(base: &Manifest, other: &Manifest, take: [bool; 7]) -> Manifest {
    let pick = |i: usize| if take[i] { other } else { base };
    Manifest {
        run_as: pick(0).run_as,
        webhooks: pick(1).webhooks,
        database_mirroring: pick(2).database_mirroring,
        scopes: pick(3).scopes.clone(),
        permission_requests: pick(4).permission_requests.clone(),
        allow_app_only: pick(5).allow_app_only,
        policy: pick(6).policy,
    }
}

/// An approved manifest and a current one that mostly resembles it (each part replaced by a
/// random one with probability 0.3), so worlds are often approved and sometimes escalated.
fn approved_and_current() -> impl Strategy<Value = (Manifest, Manifest)> {
    manifest().prop_flat_map(|approved| {
        let base = approved.clone();
        let current = (manifest(), prop::array::uniform7(prop::bool::weighted(0.3)))
            .prop_map(move |(other, take)| mix(&base, &other, take));
        (Just(approved), current)
    })
}

/// Each request of `m` resolved once, to a path of its depth, at a right no higher than asked.
pub(super) fn resolutions(m: &Manifest) -> impl Strategy<Value = Vec<ResolvedRequest>> + use<> {
    m.requests()
        .map(|req| {
            (
                select(paths_at_depth(req.scope_level.depth())),
                0..=req.right as usize,
            )
                .prop_map(move |(p, i)| ResolvedRequest {
                    scope_level: req.scope_level,
                    right: Right::ALL[i],
                    resource: path(p),
                })
        })
        .collect::<Vec<_>>()
}

/// Site-level app rights as a consent may hold them, fitting or not: one to four, each at a pool
/// path of a scope level's depth (`/` to depth 3) with any right, whatever either manifest
/// requests there (as rights written before the approval capped them could be).
pub(super) fn stored_app_rights() -> impl Strategy<Value = Vec<ResolvedRequest>> {
    let at_levels: Vec<&'static str> = PATHS
        .iter()
        .copied()
        .filter(|p| path(p).depth() <= ScopeLevel::List.depth())
        .collect();
    prop::collection::vec((select(at_levels), right()), 1..5).prop_map(|rights| {
        rights
            .into_iter()
            .map(|(p, right)| {
                let resource = path(p);
                let scope_level = ScopeLevel::ALL
                    .into_iter()
                    .find(|l| l.depth() == resource.depth())
                    .unwrap();
                ResolvedRequest {
                    scope_level,
                    right,
                    resource,
                }
            })
            .collect()
    })
}

fn whitelist_entry() -> impl Strategy<Value = WhitelistEntry> {
    (
        subsequence(SCOPES.to_vec(), 0..=SCOPES.len()),
        any::<bool>(),
    )
        .prop_map(|(allowed, on_behalf)| WhitelistEntry {
            allowed_scopes: allowed.into_iter().map(scope).collect(),
            content_access: if on_behalf {
                ContentAccess::OnBehalfOfManagedUsers
            } else {
                ContentAccess::OwnContent
            },
        })
}

/// An API-user record over the scope pool (DESIGN.md §8).
pub(super) fn api_user() -> impl Strategy<Value = ApiUser> {
    (
        subsequence(SCOPES.to_vec(), 0..=SCOPES.len()),
        any::<bool>(),
    )
        .prop_map(|(scopes, as_user)| ApiUser {
            scopes: scopes.into_iter().map(scope).collect(),
            as_user,
        })
}

/// The pool's users, most of them known, a quarter of those API users.
fn users() -> impl Strategy<Value = BTreeMap<&'static str, UserSnapshot>> {
    let facts = (
        role_set(),
        rights(),
        prop::option::weighted(0.25, api_user()),
    );
    prop::array::uniform4(prop::option::weighted(0.9, facts)).prop_map(|all| {
        USERS
            .into_iter()
            .zip(all)
            .filter_map(|(id, facts)| {
                let (roles, rights, api_user) = facts?;
                let rights: HashMap<ResourcePath, Right> =
                    rights.into_iter().map(|(p, r)| (path(p), r)).collect();
                Some((
                    id,
                    UserSnapshot {
                        known: true,
                        roles,
                        rights,
                        api_user,
                    },
                ))
            })
            .collect()
    })
}

fn consent_facts(approved: Manifest, revoked: bool) -> impl Strategy<Value = ConsentFacts> {
    resolutions(&approved).prop_map(move |resolved| ConsentFacts {
        approved: approved.clone(),
        resolved,
        revoked,
    })
}

fn world_where(consented: f64, revoked: f64) -> impl Strategy<Value = World> {
    (
        prop::bool::weighted(0.97),
        prop::bool::weighted(0.97),
        any::<bool>(),
        prop_oneof![Just(AppKind::Standard), Just(AppKind::Custom)],
        approved_and_current(),
        prop::bool::weighted(consented),
        prop::bool::weighted(revoked),
        prop::option::weighted(0.7, whitelist_entry()),
        users(),
    )
        .prop_flat_map(
            move |(
                tenant_exists,
                app_exists,
                whitelisting,
                kind,
                (approved, current),
                has_consent,
                is_revoked,
                whitelist,
                users,
            )| {
                let consent = if has_consent {
                    consent_facts(approved, is_revoked).prop_map(Some).boxed()
                } else {
                    Just(None).boxed()
                };
                consent.prop_map(move |consent| World {
                    tenant_exists,
                    app_exists,
                    whitelisting,
                    kind,
                    current: current.clone(),
                    consent,
                    whitelist: whitelist.clone(),
                    users: users.clone(),
                })
            },
        )
}

/// Any world: usually consented, sometimes revoked.
pub(super) fn world() -> impl Strategy<Value = World> {
    world_where(0.85, 0.15)
}

/// A world with a consent in it (revoked or not).
pub(super) fn consented_world() -> impl Strategy<Value = World> {
    world_where(1.0, 0.15)
}

pub(super) fn ask() -> impl Strategy<Value = Ask> {
    let mut users = vec![""];
    users.extend(QUERY_USERS);
    let mut scopes = SCOPES.to_vec();
    scopes.push("zz:unknown");
    (
        select(users),
        prop::option::weighted(0.3, select(QUERY_USERS.to_vec())),
        prop::option::weighted(0.4, select(scopes)),
        prop::option::weighted(0.8, select(permission_names())),
        select(RESOURCES.to_vec()),
        any::<bool>(),
    )
        .prop_map(
            |(user, on_behalf_of, scope, permission, resource, explain)| Ask {
                user,
                on_behalf_of: on_behalf_of.unwrap_or(""),
                scope: scope.unwrap_or(""),
                permission: permission.unwrap_or(""),
                resource,
                explain,
            },
        )
}
