//! Context tokens (docs/rules.md §8): what an allowed IssueContextToken puts in its token (subject,
//! actor, scopes, the policy applied, `rights`) and that a refusal is the decision itself.

use super::*;

/// The token question of `user` (acting for `target` if not empty) at `resource`.
fn token(
    w: &World,
    user: &'static str,
    target: &'static str,
    resource: &'static str,
) -> Result<TokenGrant, Decision> {
    let raw = RawAccessQuery {
        user_id: user,
        on_behalf_of: target,
        resource,
        explain: false,
        ..ask()
    };
    let query = AccessQuery::parse(&raw).unwrap();
    let facts = UserFacts {
        user: query.user_id.as_ref().and_then(|u| w.users.get(u.as_str())),
        target: query
            .on_behalf_of
            .as_ref()
            .and_then(|u| w.users.get(u.as_str())),
    };
    context_grant(&query, &w.snapshot(), facts)
}

fn at(p: &str, level: Right) -> RightAt {
    RightAt {
        path: path(p),
        level,
    }
}

#[test]
fn a_users_token_lists_the_lower_of_both_sides_where_either_has_a_grant() {
    // The app holds WRITE at /hr; bob MANAGE at /hr/team.
    let grant = token(&World::new(), "bob", "", "/hr").unwrap();
    assert_eq!(grant.subject, Some(uid("bob")));
    assert_eq!(grant.actor, None);
    assert_eq!(grant.policy, ReportedPolicy::UserAndApp);
    assert_eq!(
        grant.scopes,
        Vec::from_iter(scopes(&["documents:read", "documents:write"]))
    );
    // /hr is left out: bob holds nothing there.
    assert_eq!(grant.rights, [at("/hr/team", Right::Write)]);
    assert_eq!(
        level_in(&grant.rights, &path("/hr/team/docs")),
        Some(Right::Write)
    );
    assert_eq!(level_in(&grant.rights, &path("/hr/other")), None);
}

#[test]
fn ancestors_of_the_resource_that_carry_a_grant_are_listed() {
    // owner holds FULL_CONTROL at /, the app WRITE at /hr: at /hr/team the lower is WRITE.
    let grant = token(&World::new(), "owner", "", "/hr/team").unwrap();
    assert_eq!(grant.rights, [at("/hr", Right::Write)]);
    assert_eq!(
        level_in(&grant.rights, &path("/hr/team/x")),
        Some(Right::Write)
    );
}

#[test]
fn acting_on_behalf_of_a_managed_user_makes_them_the_subject() {
    let w = World::new()
        .whitelisting(true)
        .whitelisted(&["documents:read"], ContentAccess::OnBehalfOfManagedUsers);
    let grant = token(&w, "dora", "alice", "/").unwrap();
    assert_eq!(grant.subject, Some(uid("alice")));
    assert_eq!(grant.actor, Some(uid("dora")));
    assert_eq!(
        grant.rights,
        [at("/hr", Right::Write)],
        "alice's WRITE, not dora's READ"
    );
    assert_eq!(
        grant.scopes,
        Vec::from_iter(scopes(&["documents:read"])),
        "as the whitelist narrows"
    );
}

#[test]
fn a_system_user_app_holds_everything_under_the_app_only_policy() {
    let grant = token(&system_user_app(), "nobody", "", "/fin").unwrap();
    assert_eq!(grant.policy, ReportedPolicy::AppOnly);
    assert_eq!(grant.subject, Some(uid("nobody")));
    assert_eq!(grant.rights, [at("/", Right::FullControl)]);
}

#[test]
fn a_refused_token_is_the_decision_without_scope_and_permission() {
    let refusal = token(&World::new().revoked(), "bob", "", "/hr").unwrap_err();
    assert_denied(&refusal, Reason::ConsentRevoked);
    let refusal = token(&World::new(), "", "", "/").unwrap_err();
    assert_denied(&refusal, Reason::UserRequired);
    let refusal = token(&World::new(), "bob", "alice", "/").unwrap_err();
    assert_denied(&refusal, Reason::ImpersonationNotAllowed);
}
