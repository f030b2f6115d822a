//! Monotonicity (docs/rules.md §2 "Effective grant", §3, §8): more roles, rights, app grants or a
//! wider whitelist entry never take an ALLOW away, a downgraded manifest never widens access, and
//! an API-user record only narrows scopes and only widens acting on behalf (`as_user`). Run like
//! `proptest!`, measuring how often a case starts from an ALLOW.

use proptest::sample::{Index, select};

use super::strategies::{api_user, ask, consented_world, right, rights, role_set, world};
use super::*;

/// Whether the world's consent awaits a mandatory re-approval.
fn is_reapproval(w: &World) -> bool {
    matches!(
        w.snapshot().consent_state(),
        ConsentState::ReapprovalRequired(_)
    )
}

/// Least share of cases whose starting decision is the one the property is about (an ALLOW):
/// a monotonicity property holds trivially for a case that denies, so a generator that drifted
/// into denying everything would prove nothing while passing.
const MIN_ALLOW_SHARE: f64 = 0.15;

/// The share of cases that start from a DENY that are kept. Random worlds allow in 3 to 12% of
/// cases (measured at 1,024 cases); keeping 15% of the denials raises that to 28–44%, so the
/// properties are exercised where they can fail, and at 256 cases the guard above sits five
/// standard deviations below the lowest measured share.
const KEEP_DENIED: f64 = 0.15;

/// Runs `property` over `strategy` with proptest's configuration (`PROPTEST_CASES` included);
/// `property` answers whether the case started from an ALLOW. Most cases that start from a DENY
/// are skipped (see [`KEEP_DENIED`]). Fails on a counterexample (shrunk) or when fewer than
/// [`MIN_ALLOW_SHARE`] of the cases run started from an ALLOW.
pub(super) fn monotone<S>(
    name: &str,
    strategy: S,
    property: impl Fn(S::Value) -> Result<bool, TestCaseError>,
) where
    S: Strategy,
{
    use std::sync::atomic::{AtomicU32, Ordering};
    let (cases, allowed) = (AtomicU32::new(0), AtomicU32::new(0));
    let defaults = ProptestConfig::default();
    let config = ProptestConfig {
        failure_persistence: None,
        max_global_rejects: defaults.cases.saturating_mul(100),
        ..defaults
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let strategy = (strategy, prop::bool::weighted(KEEP_DENIED));
    if let Err(e) = runner.run(&strategy, |(value, keep_denied)| {
        let hit = property(value)?;
        if !hit && !keep_denied {
            return Err(TestCaseError::reject(
                "a case that starts from a DENY, skipped",
            ));
        }
        cases.fetch_add(1, Ordering::Relaxed);
        allowed.fetch_add(u32::from(hit), Ordering::Relaxed);
        Ok(())
    }) {
        panic!("{name}: {e}");
    }
    let (cases, allowed) = (cases.into_inner(), allowed.into_inner());
    assert_share(
        name,
        "started from an ALLOW",
        allowed,
        cases,
        MIN_ALLOW_SHARE,
    );
}

/// The implication every monotonicity property checks: an ALLOW in `from` is an ALLOW in `to`.
/// Answers whether `from` allowed, which is what [`monotone`] counts as a case that starts from
/// an ALLOW.
pub(super) fn keeps_allow(from: &Decision, to: &Decision) -> Result<bool, TestCaseError> {
    prop_assert!(
        !from.allowed || to.allowed,
        "expected an ALLOW, got {:?}: {}",
        to.reason,
        to.message
    );
    Ok(from.allowed)
}

/// Giving the signed-in user more roles or rights, or the on-behalf target more rights,
/// never turns an ALLOW into a DENY. (More *roles* for the target can: a target holding a
/// role the actor lacks is not a managed user, docs/rules.md §3 step 6.)
#[test]
fn more_user_roles_or_rights_never_take_an_allow_away() {
    monotone(
        "more_user_roles_or_rights_never_take_an_allow_away",
        (world(), ask(), role_set(), rights(), any::<bool>()),
        |(w, q, roles, extra, to_target)| {
            let before = decide(&w, &q);
            let mut more = w.clone();
            if to_target && !q.on_behalf_of.is_empty() {
                more.give(q.on_behalf_of, RoleSet::EMPTY, &extra);
            } else if !q.user.is_empty() {
                more.give(q.user, roles, &extra);
            }
            let after = decide(&more, &q);
            keeps_allow(&before, &after)
        },
    );
}

/// The same, in worlds set up for delegation (whitelisting on, an ON_BEHALF entry, an actor
/// holding DELEGATE acting for a pool user), where random worlds rarely allow on-behalf-of:
/// more rights for the target, or more roles or rights for the actor, never lose an ALLOW.
#[test]
fn more_rights_for_an_on_behalf_target_never_take_an_allow_away() {
    monotone(
        "more_rights_for_an_on_behalf_target_never_take_an_allow_away",
        (
            world(),
            ask(),
            select(USERS.to_vec()),
            select(QUERY_USERS.to_vec()),
            role_set(),
            rights(),
            any::<bool>(),
        ),
        |(w, q, actor, target, roles, extra, to_target)| {
            let mut w = w;
            w.whitelisting = true;
            let allowed_scopes = w.whitelist.take().unwrap_or_default().allowed_scopes;
            w.whitelist = Some(WhitelistEntry {
                allowed_scopes,
                content_access: ContentAccess::OnBehalfOfManagedUsers,
            });
            w.give(actor, RoleSet::of([Role::Delegate]), &[]);
            let q = Ask {
                user: actor,
                on_behalf_of: target,
                ..q
            };
            let before = decide(&w, &q);
            let mut more = w.clone();
            if to_target {
                more.give(target, RoleSet::EMPTY, &extra);
            } else {
                more.give(actor, roles, &extra);
            }
            let after = decide(&more, &q);
            keeps_allow(&before, &after)
        },
    );
}

/// An app with an extra or a higher resolved grant (one the approved and the current
/// manifests allow) never loses an ALLOW.
#[test]
fn more_app_grants_never_take_an_allow_away() {
    monotone(
        "more_app_grants_never_take_an_allow_away",
        (
            consented_world(),
            ask(),
            select(ScopeLevel::ALL.to_vec()),
            any::<Index>(),
            right(),
        ),
        |(w, q, level, at, r)| {
            let before = decide(&w, &q);
            let mut more = w.clone();
            let consent = more.consent.as_mut().unwrap();
            if more.current.permission_requests.contains_key(&level) {
                match consent.approved.permission_requests.get(&level) {
                    // Higher: the resolved grant at this level raised to all that was approved.
                    Some(&approved) => {
                        for g in consent
                            .resolved
                            .iter_mut()
                            .filter(|g| g.scope_level == level)
                        {
                            g.right = approved;
                        }
                    }
                    // Extra: the level approved too, and resolved.
                    None => {
                        consent.approved.permission_requests.insert(level, r);
                        consent.resolved.push(ResolvedRequest {
                            scope_level: level,
                            right: r,
                            resource: path(at.get::<&str>(&paths_at_depth(level.depth()))),
                        });
                    }
                }
            }
            let after = decide(&more, &q);
            keeps_allow(&before, &after)
        },
    );
}

/// With whitelisting enabled, giving the app an entry for every consented scope on behalf
/// of managed users (instead of none, or a narrower one) never loses an ALLOW.
#[test]
fn a_wider_whitelist_entry_never_takes_an_allow_away() {
    monotone(
        "a_wider_whitelist_entry_never_takes_an_allow_away",
        (world(), ask()),
        |(w, q)| {
            let mut w = w;
            w.whitelisting = true;
            let before = decide(&w, &q);
            let mut wider = w.clone();
            wider.whitelist = Some(WhitelistEntry {
                allowed_scopes: Default::default(),
                content_access: ContentAccess::OnBehalfOfManagedUsers,
            });
            let after = decide(&wider, &q);
            keeps_allow(&before, &after)
        },
    );
}

/// A downgrade of the current manifest (scopes or requests removed, rights lowered,
/// allow_app_only off, USER_ONLY → USER_AND_APP, SYSTEM_USER → USER_CONTEXT, webhooks or
/// mirroring off) never widens what is allowed: ALLOW after ⇒ ALLOW before. Excluded: a
/// world awaiting re-approval, where withdrawing the escalation legitimately restores the
/// approved access (the trigger is measured against the approval, docs/rules.md §2).
#[test]
fn a_downgraded_manifest_never_widens_access() {
    monotone(
        "a_downgraded_manifest_never_widens_access",
        (
            world(),
            ask(),
            prop::array::uniform4(any::<bool>()),
            prop::array::uniform4(0..=4usize),
            prop::array::uniform6(any::<bool>()),
        ),
        |(w, q, drop_scopes, lower, flags)| {
            if is_reapproval(&w) {
                return Ok(false);
            }
            let before = decide(&w, &q);
            let mut down = w.clone();
            let m = &mut down.current;
            for (s, drop) in SCOPES.into_iter().zip(drop_scopes) {
                if drop {
                    m.scopes.remove(s);
                }
            }
            for (level, by) in ScopeLevel::ALL.into_iter().zip(lower) {
                if let Some(&held) = m.permission_requests.get(&level) {
                    // Lower by `by` steps; below READ the request is removed.
                    match (held as usize).checked_sub(by) {
                        Some(i) => {
                            m.permission_requests.insert(level, Right::ALL[i]);
                        }
                        None => {
                            m.permission_requests.remove(&level);
                        }
                    }
                }
            }
            if flags[0] {
                m.allow_app_only = false;
            }
            if flags[1] {
                m.policy = Policy::UserAndApp;
            }
            if flags[2] {
                m.run_as = RunAs::UserContext;
            }
            if flags[3] {
                m.webhooks = false;
            }
            if flags[4] {
                m.database_mirroring = false;
            }
            if flags[5] {
                m.scopes.clear();
            }
            let after = decide(&down, &q);
            // An ALLOW after the downgrade was an ALLOW before it.
            keeps_allow(&after, &before)
        },
    );
}

/// The world with the pool user `user` known (given nothing if it was not), its API-user record
/// set to `api`, and the query asked by `user`.
fn signed_in_as(w: &World, q: Ask, user: &'static str, api: Option<ApiUser>) -> (World, Ask) {
    let mut w = w.clone();
    w.give(user, RoleSet::EMPTY, &[]);
    if let Some(u) = w.users.get_mut(user) {
        u.api_user = api;
    }
    (w, Ask { user, ..q })
}

/// An API user without `as_user` never allows more than the same user without the API-user
/// record: the record only narrows scopes (docs/rules.md §8).
#[test]
fn an_api_user_without_as_user_never_allows_more_than_the_plain_user() {
    monotone(
        "an_api_user_without_as_user_never_allows_more_than_the_plain_user",
        (world(), ask(), select(USERS.to_vec()), api_user()),
        |(w, q, user, api)| {
            let api = ApiUser {
                as_user: false,
                ..api
            };
            let (with, q) = signed_in_as(&w, q, user, Some(api));
            let (without, q) = signed_in_as(&w, q, user, None);
            keeps_allow(&decide(&with, &q), &decide(&without, &q))
        },
    );
}

/// An API-user record whose scopes include the one asked for (if any) never takes an ALLOW
/// away: `as_user` only adds a ground for acting on behalf (docs/rules.md §8).
#[test]
fn an_api_user_record_admitting_the_scope_never_takes_an_allow_away() {
    monotone(
        "an_api_user_record_admitting_the_scope_never_takes_an_allow_away",
        (world(), ask(), select(USERS.to_vec()), api_user()),
        |(w, q, user, mut api)| {
            if !q.scope.is_empty() {
                api.scopes.insert(scope(q.scope));
            }
            let (without, q) = signed_in_as(&w, q, user, None);
            let (with, q) = signed_in_as(&w, q, user, Some(api));
            keeps_allow(&decide(&without, &q), &decide(&with, &q))
        },
    );
}
