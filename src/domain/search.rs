//! Search, the reverse of a check (docs/rules.md §10): which actions a subject may take at a
//! resource, and under a resource which top-most paths it may reach at a level.
//!
//! Both are read off a context token's `rights` ([`token_rights`]): the offline form of §3 step 7
//! whose level at any path under the token's resource is the engine's, so the answers are the
//! engine's without asking it once per path. Since a side's level only grows on the way down,
//! the paths where the level is at least `L` are whole subtrees, each rooted at a path that
//! carries a grant with a level of `L` or more (or at the resource itself, when an ancestor
//! carries one): the search lists those roots, in tree order. Every path it lists
//! checks ALLOWED at `L`, and every path under the resource that checks ALLOWED at `L` lies
//! under one it lists; the property tests hold both against the engine.
//!
//! [`token_rights`]: super::token::token_rights

use super::decision::{AccessQuery, Decision, UserFacts};
use super::effective::AppSnapshot;
use super::path::ResourcePath;
use super::rights::{FinePermission, PermissionName, Right};
use super::token::{RightAt, context_grant, level_in};

/// The permissions a holder of `level` may exercise, by the names a check accepts: every level
/// up to it, then the fine-grained permissions it includes, in the seed table's order.
pub fn actions_of(level: Option<Right>) -> Vec<PermissionName> {
    let Some(level) = level else {
        return Vec::new();
    };
    Right::ALL
        .into_iter()
        .filter(|r| *r <= level)
        .map(PermissionName::Level)
        .chain(
            FinePermission::ALL
                .into_iter()
                .filter(|p| p.minimum_right() <= level)
                .map(PermissionName::Fine),
        )
        .collect()
}

/// The top-most paths at or under `under` where `rights` give at least `at_least`, in
/// [`tree_order`]: `under` itself when it already has that level, else each listed path under
/// it with that level that no other such path covers.
pub fn reachable_roots(
    rights: &[RightAt],
    under: &ResourcePath,
    at_least: Right,
) -> Vec<ResourcePath> {
    if level_in(rights, under).is_some_and(|l| l >= at_least) {
        return vec![under.clone()];
    }
    let mut candidates: Vec<&ResourcePath> = rights
        .iter()
        .filter(|r| r.level >= at_least && under.covers(&r.path))
        .map(|r| &r.path)
        .collect();
    candidates.sort_by(|a, b| tree_order(a, b));
    candidates.dedup();
    // In tree order a path comes right before everything under it, so a path is top-most
    // exactly when the last root kept does not cover it.
    let mut roots: Vec<ResourcePath> = Vec::new();
    for path in candidates {
        if !roots.last().is_some_and(|root| root.covers(path)) {
            roots.push(path.clone());
        }
    }
    roots
}

/// The actions `query` may take at its resource: the check of `query` (its scope and
/// permission ignored) decides whether the subject reaches the resource at all; if it does not,
/// its decision is the answer.
pub fn action_search(
    query: &AccessQuery,
    app: &AppSnapshot,
    users: UserFacts<'_>,
) -> Result<Vec<PermissionName>, Decision> {
    let grant = context_grant(&bare(query), app, users)?;
    Ok(actions_of(level_in(&grant.rights, &query.resource)))
}

/// The top-most paths at or under `query`'s resource that the subject reaches with
/// `permission`, as [`reachable_roots`] lists them; the check of `query` (its scope and
/// permission ignored) decides whether the subject reaches anything at all.
pub fn resource_search(
    query: &AccessQuery,
    permission: PermissionName,
    app: &AppSnapshot,
    users: UserFacts<'_>,
) -> Result<Vec<ResourcePath>, Decision> {
    let grant = context_grant(&bare(query), app, users)?;
    Ok(reachable_roots(
        &grant.rights,
        &query.resource,
        permission.required_right(),
    ))
}

/// Paths compared segment by segment, so that a path comes right before the paths under it (in
/// byte order `/a-x` would fall between `/a` and `/a/b`). The order search results are listed
/// and paged in.
pub fn tree_order(a: &ResourcePath, b: &ResourcePath) -> std::cmp::Ordering {
    a.as_str().split('/').cmp(b.as_str().split('/'))
}

/// `query` without scope or permission: the question a context token answers.
fn bare(query: &AccessQuery) -> AccessQuery {
    AccessQuery {
        scope: None,
        permission: None,
        explain: false,
        ..query.clone()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::testing::path as p;

    fn at(path: &str, level: Right) -> RightAt {
        RightAt {
            path: p(path),
            level,
        }
    }

    fn paths(v: &[ResourcePath]) -> Vec<&str> {
        v.iter().map(ResourcePath::as_str).collect()
    }

    #[test]
    fn the_roots_are_the_top_most_paths_with_the_level() {
        let rights = [
            at("/a", Right::Read),
            at("/a/b", Right::Write),
            at("/a/b/c", Right::Manage),
            at("/a/d", Right::Write),
            at("/e", Right::FullControl),
        ];
        assert_eq!(
            paths(&reachable_roots(&rights, &p("/"), Right::Read)),
            ["/a", "/e"]
        );
        assert_eq!(
            paths(&reachable_roots(&rights, &p("/"), Right::Write)),
            ["/a/b", "/a/d", "/e"]
        );
        assert_eq!(
            paths(&reachable_roots(&rights, &p("/a"), Right::Manage)),
            ["/a/b/c"]
        );
        assert_eq!(
            paths(&reachable_roots(&rights, &p("/"), Right::FullControl)),
            ["/e"]
        );
    }

    #[test]
    fn a_resource_already_at_the_level_is_its_own_root() {
        let rights = [at("/", Right::Read), at("/a", Right::Write)];
        assert_eq!(
            paths(&reachable_roots(&rights, &p("/x/y"), Right::Read)),
            ["/x/y"]
        );
        assert_eq!(
            paths(&reachable_roots(&rights, &p("/a/b"), Right::Write)),
            ["/a/b"]
        );
        assert!(reachable_roots(&rights, &p("/x"), Right::Write).is_empty());
    }

    #[test]
    fn siblings_sharing_a_prefix_are_not_nested() {
        let rights = [
            at("/ab", Right::Read),
            at("/a/b", Right::Read),
            at("/a-x", Right::Read),
            at("/a", Right::Read),
        ];
        assert_eq!(
            paths(&reachable_roots(&rights, &p("/"), Right::Read)),
            ["/a", "/a-x", "/ab"]
        );
    }

    #[test]
    fn the_actions_of_a_level_are_the_levels_up_to_it_and_what_they_include() {
        assert!(actions_of(None).is_empty());
        let read: Vec<&str> = actions_of(Some(Right::Read))
            .into_iter()
            .map(PermissionName::as_str)
            .collect();
        assert_eq!(read[0], "READ");
        assert!(read.contains(&"VIEW_ITEMS") && !read.contains(&"EDIT_ITEMS"));
        assert!(!read.contains(&"WRITE"));
        let all = actions_of(Some(Right::FullControl));
        assert_eq!(all.len(), Right::ALL.len() + FinePermission::ALL.len());
    }
}
