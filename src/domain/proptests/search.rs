//! Search against the engine (docs/rules.md §10): on generated worlds, the resource search's
//! roots are exactly the tops of what the engine allows, and the action search lists exactly what
//! the engine allows at the resource. Each property counts the cases where the subject reaches
//! the resource and fails when too few do ([`counted`]).

use proptest::sample::select;

use super::strategies::open_world_and_ask;
use super::*;
use crate::domain::search::{action_search, resource_search};

/// Least share of cases where the check at the search's resource allows, so that the search is
/// compared with the engine: as for context tokens (`tokens.rs`), 70–75 % of open-world cases
/// are, and this sits well below.
const MIN_REACHED_SHARE: f64 = 0.5;

/// The search question of `ask` at `resource`; the search ignores scope and permission.
fn search_query(ask: &Ask, resource: &'static str) -> AccessQuery {
    Ask {
        resource,
        explain: false,
        ..*ask
    }
    .query()
}

/// The engine's answer for `permission` at `at`, the rest of `query` unchanged but for scope.
fn engine_allows(
    w: &World,
    snapshot: &AppSnapshot,
    query: &AccessQuery,
    permission: PermissionName,
    at: &ResourcePath,
) -> bool {
    let mut asked = query.clone();
    asked.scope = None;
    asked.permission = Some(permission);
    asked.resource = at.clone();
    check_access(&asked, snapshot, w.users(&asked)).allowed
}

/// Every root the resource search lists is under its resource and checks ALLOWED; every path
/// of the tree under the resource that checks ALLOWED lies under a listed root; no root lies
/// under another. A refused search is the check's own refusal.
#[test]
fn the_roots_of_a_resource_search_are_the_tops_of_what_the_engine_allows() {
    counted(
        "the_roots_of_a_resource_search_are_the_tops_of_what_the_engine_allows",
        MIN_REACHED_SHARE,
        (
            open_world_and_ask(),
            select(RESOURCES.to_vec()),
            select(every_permission()),
        ),
        |((w, a), resource, permission)| {
            let query = search_query(&a, resource);
            let snapshot = w.snapshot();
            let roots = match resource_search(&query, permission, &snapshot, w.users(&query)) {
                Ok(roots) => roots,
                Err(refusal) => {
                    let mut bare = query.clone();
                    bare.scope = None;
                    bare.permission = None;
                    let decision = check_access(&bare, &snapshot, w.users(&bare));
                    prop_assert!(!decision.allowed);
                    prop_assert_eq!(refusal.reason, decision.reason);
                    return Ok(false);
                }
            };
            let under = path(resource);
            for root in &roots {
                prop_assert!(under.covers(root), "{} is not under {}", root, under);
                prop_assert!(
                    engine_allows(&w, &snapshot, &query, permission, root),
                    "{} listed at {}, refused by the engine",
                    permission,
                    root
                );
            }
            for (i, a) in roots.iter().enumerate() {
                for b in &roots[i + 1..] {
                    prop_assert!(!a.covers(b) && !b.covers(a), "{} and {} nest", a, b);
                }
            }
            for q in RESOURCES
                .iter()
                .map(|p| path(p))
                .filter(|q| under.covers(q))
            {
                if engine_allows(&w, &snapshot, &query, permission, &q) {
                    prop_assert!(
                        roots.iter().any(|r| r.covers(&q)),
                        "{} allowed at {} but under none of {:?}",
                        permission,
                        q,
                        roots
                    );
                }
            }
            Ok(true)
        },
    );
}

/// The action search lists a name exactly when the engine allows it at the resource.
#[test]
fn the_action_search_lists_what_the_engine_allows_at_the_resource() {
    counted(
        "the_action_search_lists_what_the_engine_allows_at_the_resource",
        MIN_REACHED_SHARE,
        (open_world_and_ask(), select(RESOURCES.to_vec())),
        |((w, a), resource)| {
            let query = search_query(&a, resource);
            let snapshot = w.snapshot();
            let Ok(actions) = action_search(&query, &snapshot, w.users(&query)) else {
                return Ok(false);
            };
            let at = path(resource);
            for permission in every_permission() {
                prop_assert_eq!(
                    actions.contains(&permission),
                    engine_allows(&w, &snapshot, &query, permission, &at),
                    "{} at {}: listed {:?}",
                    permission,
                    at,
                    actions
                );
            }
            Ok(true)
        },
    );
}
