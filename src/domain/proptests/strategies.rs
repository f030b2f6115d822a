//! The generators of worlds and queries over the pools (docs/rules.md §2 domain model, §3 query):
//! manifests, consents consistent with the manifest they approved (some with stored site-level
//! app rights), whitelist entries, users (some of them API users) and queries. Worlds of every
//! kind (`world()`), and open ones where most checks get past the consent step, with queries
//! shaped by the world they are asked in (`open_world_and_ask()`), for the properties that need
//! the later steps.

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
/// random one with probability `drift`), so worlds are often approved and sometimes escalated.
fn approved_and_current(drift: f64) -> impl Strategy<Value = (Manifest, Manifest)> {
    manifest().prop_flat_map(move |approved| {
        let base = approved.clone();
        let current = (
            manifest(),
            prop::array::uniform7(prop::bool::weighted(drift)),
        )
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

/// An API-user record over the scope pool (docs/rules.md §8).
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

fn consent_facts(
    approved: Manifest,
    revoked: bool,
    app_rights: f64,
) -> impl Strategy<Value = ConsentFacts> {
    // (`option::weighted` refuses a probability of 0.)
    let app_rights = if app_rights > 0.0 {
        prop::option::weighted(app_rights, stored_app_rights()).boxed()
    } else {
        Just(None).boxed()
    };
    (resolutions(&approved), app_rights).prop_map(move |(resolved, app_rights)| ConsentFacts {
        approved: approved.clone(),
        resolved,
        app_rights: app_rights.unwrap_or_default(),
        revoked,
    })
}

/// How likely each part of a generated world is, and so how often a check gets past the early
/// steps of docs/rules.md §3.
#[derive(Debug, Clone, Copy)]
struct Odds {
    /// That the tenant exists; (separately) that the application is registered.
    exists: f64,
    /// That the application has a whitelist entry (whitelisting is on in half the worlds).
    entry: f64,
    /// That there is a consent.
    consented: f64,
    /// That the consent is revoked.
    revoked: f64,
    /// That each part of the current manifest is replaced by a random one (see
    /// [`approved_and_current`]).
    drift: f64,
    /// That the consent holds site-level app rights, fitting or not ([`stored_app_rights`]).
    app_rights: f64,
}

/// Worlds of every kind: usually consented, sometimes revoked, escalated or not whitelisted.
const ANY: Odds = Odds {
    exists: 0.97,
    entry: 0.7,
    consented: 0.85,
    revoked: 0.15,
    drift: 0.3,
    app_rights: 0.0,
};

/// Worlds where most checks get past the consent step (about four in five), and half of the
/// consents hold stored app rights: what the model properties need to reach the later steps.
const OPEN: Odds = Odds {
    exists: 0.98,
    entry: 0.95,
    consented: 0.96,
    revoked: 0.04,
    drift: 0.12,
    app_rights: 0.5,
};

fn world_where(odds: Odds) -> impl Strategy<Value = World> {
    (
        prop::bool::weighted(odds.exists),
        prop::bool::weighted(odds.exists),
        any::<bool>(),
        prop_oneof![Just(AppKind::Standard), Just(AppKind::Custom)],
        approved_and_current(odds.drift),
        prop::bool::weighted(odds.consented),
        prop::bool::weighted(odds.revoked),
        prop::option::weighted(odds.entry, whitelist_entry()),
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
                    consent_facts(approved, is_revoked, odds.app_rights)
                        .prop_map(Some)
                        .boxed()
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
    world_where(ANY)
}

/// A world with a consent in it (revoked or not).
pub(super) fn consented_world() -> impl Strategy<Value = World> {
    world_where(Odds {
        consented: 1.0,
        ..ANY
    })
}

/// A world where most checks get past the consent step, half of its consents holding stored
/// app rights ([`OPEN`]).
pub(super) fn open_world() -> impl Strategy<Value = World> {
    world_where(OPEN)
}

/// An [`open_world`] and a query shaped by it ([`ask_in`]).
pub(super) fn open_world_and_ask() -> impl Strategy<Value = (World, Ask)> {
    open_world().prop_flat_map(|w| {
        let ask = ask_in(&w);
        (Just(w), ask)
    })
}

/// A query shaped by the world it is asked in, so that most reach the later steps of
/// docs/rules.md §3: mostly by a user the tenant knows (else app-only, or anyone of the pool); one
/// time in ten on behalf of someone the world lets the user act for, when there is such a pair,
/// and one in twenty on behalf of anyone; a scope now and then, mostly one the app may use; and
/// mostly a permission. (The shaping reads the world with the engine's helpers; only the model
/// in `model.rs` must not.)
pub(super) fn ask_in(w: &World) -> impl Strategy<Value = Ask> + use<> {
    let known: Vec<&'static str> = w.users.keys().copied().collect();
    let mut anyone = vec![""];
    anyone.extend(QUERY_USERS);
    let user = if known.is_empty() {
        select(anyone).boxed()
    } else {
        prop_oneof![8 => select(known), 1 => Just(""), 1 => select(anyone)].boxed()
    };
    let alone = user.clone().prop_map(|u| (u, ""));
    let for_anyone = (user, select(QUERY_USERS.to_vec()));
    let (managed, unmanaged) = delegations(w);
    let who = match (managed.is_empty(), unmanaged.is_empty()) {
        (true, true) => prop_oneof![19 => alone, 1 => for_anyone].boxed(),
        (false, true) => prop_oneof![14 => alone, 1 => for_anyone, 5 => select(managed)].boxed(),
        (true, false) => prop_oneof![16 => alone, 1 => for_anyone, 3 => select(unmanaged)].boxed(),
        (false, false) => prop_oneof![
            13 => alone,
            1 => for_anyone,
            4 => select(managed),
            2 => select(unmanaged)
        ]
        .boxed(),
    };
    let shared: Vec<&'static str> = SCOPES
        .into_iter()
        .filter(|s| {
            let s = scope(s);
            let whitelisted = match &w.whitelist {
                Some(e) if w.whitelisting && !e.allowed_scopes.is_empty() => {
                    e.allowed_scopes.contains(&s)
                }
                _ => true,
            };
            w.current.scopes.contains(&s)
                && w.consent
                    .as_ref()
                    .is_some_and(|c| c.approved.scopes.contains(&s))
                && whitelisted
        })
        .collect();
    let mut scopes = SCOPES.to_vec();
    scopes.push("zz:unknown");
    let scope = if shared.is_empty() {
        prop_oneof![9 => Just(""), 1 => select(scopes)].boxed()
    } else {
        prop_oneof![7 => Just(""), 2 => select(shared), 1 => select(scopes)].boxed()
    };
    (
        who,
        scope,
        prop::option::weighted(0.95, select(permission_names())),
        select(RESOURCES.to_vec()),
        any::<bool>(),
    )
        .prop_map(
            |((user, on_behalf_of), scope, permission, resource, explain)| Ask {
                user,
                on_behalf_of,
                scope,
                permission: permission.unwrap_or(""),
                resource,
                explain,
            },
        )
}

/// The pairs (actor, target) of known users where the actor has a ground to act on behalf in
/// `w` (docs/rules.md §3 step 6, §8): those where the target holds no role the actor lacks (a
/// managed user), and those where it does.
type Pairs = Vec<(&'static str, &'static str)>;
fn delegations(w: &World) -> (Pairs, Pairs) {
    let on_behalf = w.whitelisting
        && w.whitelist
            .as_ref()
            .is_some_and(|e| e.content_access == ContentAccess::OnBehalfOfManagedUsers);
    let ground = |u: &UserSnapshot| {
        let by_role = u.roles.has(Role::Delegate) || u.roles.is_admin();
        let as_user = u.api_user.as_ref().is_some_and(|a| a.as_user);
        (on_behalf && by_role) || (as_user && (on_behalf || !w.whitelisting))
    };
    let (mut managed, mut unmanaged) = (Vec::new(), Vec::new());
    for (&actor, a) in w.users.iter().filter(|(_, a)| ground(a)) {
        for (&target, t) in &w.users {
            if t.roles.role_missing_from(a.roles).is_none() {
                managed.push((actor, target));
            } else {
                unmanaged.push((actor, target));
            }
        }
    }
    (managed, unmanaged)
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
