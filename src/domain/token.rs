//! What a context token says (docs/rules.md §8 "Context tokens"): the §3 decision with no scope and
//! no permission, and, when it allows, the token's subject, scopes, policy and `rights`.
//!
//! `rights` is the offline form of §3 step 7: a list of `{path, level}` such that, for any path
//! `q` under the token's resource, the highest level among listed paths that are `q` or its
//! ancestors ([`level_in`]) is the level the engine would allow at `q`. Why it holds: each side's
//! effective level at `q` is the level at the deepest path on the way down to `q` that carries
//! one of its grants, and levels only grow on the way down. For USER_AND_APP take the deeper of
//! the app's and the user's such paths: both sides already hold their level at `q` there, so the
//! lower of the two, listed there, is the engine's answer at `q`; no listed ancestor of `q` can
//! carry more, because both sides only grow towards `q`. The property tests hold this against
//! the engine on generated worlds.

use std::collections::BTreeSet;

use super::decision::{AccessQuery, Decision, UserFacts, check_access};
use super::effective::{AppSnapshot, EffectiveGrant, ReportedPolicy};
use super::ids::{Scope, UserId};
use super::path::ResourcePath;
use super::rights::{PermissionName, Right};
use super::tenant::UserSnapshot;

/// One entry of a token's `rights`: `level` at `path` and below it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RightAt {
    /// Where the level holds (and everything below it).
    pub path: ResourcePath,
    /// The level.
    pub level: Right,
}

/// What an allowed IssueContextToken puts in its token, besides the times, keys and revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenGrant {
    /// `sub`: the user whose rights count (the `on_behalf_of` target when there is one); `None`
    /// for an app-only call.
    pub subject: Option<UserId>,
    /// `act.sub`: the signed-in user, when acting on behalf of another.
    pub actor: Option<UserId>,
    /// `scp`: the effective scopes, as §3 step 4 would admit them.
    pub scopes: Vec<Scope>,
    /// `pol`: the policy step 7 applies.
    pub policy: ReportedPolicy,
    /// `rights`: see the module documentation.
    pub rights: Vec<RightAt>,
}

static UNKNOWN_USER: std::sync::LazyLock<UserSnapshot> =
    std::sync::LazyLock::new(UserSnapshot::default);

/// Decides `query` (IssueContextToken asks it with no scope and no permission); an allow becomes
/// the token's grant at `query.resource`, anything else is the decision, to be answered as it is.
pub fn context_grant(
    query: &AccessQuery,
    app: &AppSnapshot,
    users: UserFacts<'_>,
) -> Result<TokenGrant, Decision> {
    let decision = check_access(query, app, users);
    let grant = match app.effective() {
        Some(grant) if decision.allowed => grant,
        _ => return Err(decision),
    };
    let (subject, actor, facts) = match (&query.on_behalf_of, &query.user_id) {
        (Some(target), user) => (Some(target.clone()), user.clone(), users.target),
        (None, user) => (user.clone(), None, users.user),
    };
    let facts = facts.unwrap_or(&UNKNOWN_USER);
    let policy = applied_policy(grant, query.user_id.is_some());
    Ok(TokenGrant {
        subject,
        actor,
        scopes: token_scopes(grant, query.user_id.as_ref().and(users.user)),
        policy,
        rights: token_rights(policy, grant, facts, &query.resource),
    })
}

/// The policy §3 step 7 applies: APP_ONLY for an effective system-user application (whoever the
/// user is) and for an app-only call, else the effective policy.
pub fn applied_policy(grant: &EffectiveGrant, has_user: bool) -> ReportedPolicy {
    if grant.system_user || !has_user {
        ReportedPolicy::AppOnly
    } else {
        grant.policy.into()
    }
}

/// The scopes a token carries (`scp`): exactly those §3 step 4 admits for the signed-in `user`:
/// the app's effective scopes, narrowed by the user's API-user scopes when they are one
/// (docs/rules.md §8). The one place that decides them.
pub fn token_scopes(grant: &EffectiveGrant, user: Option<&UserSnapshot>) -> Vec<Scope> {
    match user.and_then(|u| u.api_user.as_ref()) {
        Some(api) => api.narrow(&grant.scopes).into_iter().collect(),
        None => grant.scopes.iter().cloned().collect(),
    }
}

/// The token's `rights` at `resource` under `policy`, for the application's effective grant and
/// the facts of the user whose rights count. Listed: every path carrying a grant of a side the
/// policy counts that is at or below `resource`, or one of its ancestors; each with the level
/// the policy allows there (for USER_AND_APP, the lower of the two effective, inherited levels).
/// A path where the policy allows nothing is left out. Sorted by path.
pub fn token_rights(
    policy: ReportedPolicy,
    grant: &EffectiveGrant,
    user: &UserSnapshot,
    resource: &ResourcePath,
) -> Vec<RightAt> {
    let counts_app = policy != ReportedPolicy::UserOnly;
    let counts_user = policy != ReportedPolicy::AppOnly;
    let mut paths: BTreeSet<ResourcePath> = BTreeSet::new();
    if counts_app {
        if grant.system_user {
            paths.insert(ResourcePath::root());
        }
        paths.extend(grant.app_rights.iter().map(|r| r.resource.clone()));
    }
    if counts_user {
        paths.extend(user.rights.keys().cloned());
    }
    paths
        .into_iter()
        .filter(|p| resource.covers(p) || p.covers(resource))
        .filter_map(|path| {
            let level = match policy {
                ReportedPolicy::AppOnly => grant.app_right_at(&path)?,
                ReportedPolicy::UserOnly => user.right_at(&path)?,
                ReportedPolicy::UserAndApp => grant.app_right_at(&path)?.min(user.right_at(&path)?),
            };
            Some(RightAt { path, level })
        })
        .collect()
}

/// The offline rule over a token's `rights`: the highest level listed at `path` or an ancestor.
pub fn level_in(rights: &[RightAt], path: &ResourcePath) -> Option<Right> {
    rights
        .iter()
        .filter(|r| r.path.covers(path))
        .map(|r| r.level)
        .max()
}

/// Whether `rights` allow `permission` (a level or one of the 19 fine-grained permissions) at
/// `path` by the offline rule.
pub fn allows_in(rights: &[RightAt], path: &ResourcePath, permission: PermissionName) -> bool {
    level_in(rights, path).is_some_and(|held| held >= permission.required_right())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::domain::consent::ResolvedRequest;
    use crate::domain::{Policy, RoleSet, ScopeLevel};
    use crate::testing::path as p;

    fn grant(rights: &[(&str, Right)]) -> EffectiveGrant {
        EffectiveGrant {
            app_rights: rights
                .iter()
                .map(|&(path, right)| ResolvedRequest {
                    scope_level: ScopeLevel::ALL[p(path).depth().min(3)],
                    right,
                    resource: p(path),
                })
                .collect(),
            ..EffectiveGrant::default()
        }
    }

    fn at(path: &str, level: Right) -> RightAt {
        RightAt {
            path: p(path),
            level,
        }
    }

    #[test]
    fn user_and_app_lists_the_lower_inherited_level_at_every_granted_path() {
        let app = grant(&[("/", Right::Read), ("/hr/team", Right::Manage)]);
        let user = UserSnapshot::new(
            RoleSet::EMPTY,
            [(p("/hr"), Right::FullControl), (p("/fin"), Right::Write)],
        );
        let rights = token_rights(ReportedPolicy::UserAndApp, &app, &user, &p("/hr"));
        // `/` carries the app's grant, but the user holds nothing there: left out.
        assert_eq!(
            rights,
            [at("/hr", Right::Read), at("/hr/team", Right::Manage)]
        );
        assert_eq!(level_in(&rights, &p("/hr/team/docs")), Some(Right::Manage));
        assert_eq!(level_in(&rights, &p("/hr/other")), Some(Right::Read));
    }

    #[test]
    fn a_path_where_one_side_holds_nothing_is_left_out() {
        let app = grant(&[("/hr", Right::Write)]);
        let user = UserSnapshot::new(RoleSet::EMPTY, [(p("/hr/team"), Right::Read)]);
        let rights = token_rights(ReportedPolicy::UserAndApp, &app, &user, &p("/"));
        assert_eq!(rights, [at("/hr/team", Right::Read)]);
        assert_eq!(level_in(&rights, &p("/hr")), None);
    }

    #[test]
    fn only_paths_under_the_resource_or_above_it_are_listed() {
        let app = grant(&[
            ("/", Right::Write),
            ("/fin", Right::Manage),
            ("/hr/a", Right::Manage),
        ]);
        let rights = token_rights(
            ReportedPolicy::AppOnly,
            &app,
            &UserSnapshot::default(),
            &p("/hr"),
        );
        assert_eq!(rights, [at("/", Right::Write), at("/hr/a", Right::Manage)]);
    }

    #[test]
    fn user_only_ignores_the_app_and_a_system_user_app_holds_everything() {
        let app = grant(&[]);
        let user = UserSnapshot::new(RoleSet::EMPTY, [(p("/x"), Right::Manage)]);
        assert_eq!(
            token_rights(ReportedPolicy::UserOnly, &app, &user, &p("/")),
            [at("/x", Right::Manage)]
        );
        let system = EffectiveGrant {
            system_user: true,
            ..grant(&[("/x", Right::Read)])
        };
        let rights = token_rights(ReportedPolicy::AppOnly, &system, &user, &p("/x"));
        assert_eq!(
            rights,
            [at("/", Right::FullControl), at("/x", Right::FullControl)]
        );
        assert!(allows_in(
            &rights,
            &p("/x/y"),
            PermissionName::parse("p", "APPLY_STYLE_SHEETS").unwrap()
        ));
    }

    #[test]
    fn the_applied_policy_is_app_only_without_a_user_or_for_a_system_user() {
        let mut g = EffectiveGrant {
            policy: Policy::UserOnly,
            ..EffectiveGrant::default()
        };
        assert_eq!(applied_policy(&g, true), ReportedPolicy::UserOnly);
        assert_eq!(applied_policy(&g, false), ReportedPolicy::AppOnly);
        g.system_user = true;
        assert_eq!(applied_policy(&g, true), ReportedPolicy::AppOnly);
        for policy in [
            ReportedPolicy::UserAndApp,
            ReportedPolicy::UserOnly,
            ReportedPolicy::AppOnly,
        ] {
            assert_eq!(ReportedPolicy::from_name(policy.as_str()), Some(policy));
        }
    }
}
