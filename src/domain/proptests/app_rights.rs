//! Site-level app rights (DESIGN.md §8): adding one that fits the current manifest never takes
//! an ALLOW away, and never lets the app do more than the manifest requests at its level.

use proptest::sample::select;

use super::monotone::{keeps_allow, monotone};
use super::strategies::{ask, consented_world, right, world};
use super::*;
use crate::domain::consent::app_right;

/// The decision for `query` in `w`, with `snapshot` in place of the world's own.
fn decide_with(w: &World, snapshot: &AppSnapshot, query: &AccessQuery) -> Decision {
    let users = UserFacts {
        user: query.user_id.as_ref().and_then(|u| w.users.get(u.as_str())),
        target: query
            .on_behalf_of
            .as_ref()
            .and_then(|u| w.users.get(u.as_str())),
    };
    check_access(query, snapshot, users)
}

/// The world's snapshot with `granted` added to its consent, as GrantAppRight would.
fn with_app_right(w: &World, granted: &ResolvedRequest) -> AppSnapshot {
    let s = w.snapshot();
    AppSnapshot::new(
        s.tenant,
        s.app,
        s.consent.map(|c| c.with_app_right(granted.clone())),
        s.whitelist,
    )
}

/// The app right at `resource`, at `wanted` capped to what the current manifest requests there,
/// after checking that `wanted` itself is refused exactly when it is above that request; `None`
/// when the manifest requests nothing at the level of `resource` (the grant is refused).
fn fitting(
    w: &World,
    resource: &'static str,
    wanted: Right,
) -> Result<Option<ResolvedRequest>, TestCaseError> {
    let resource = path(resource);
    let level = ScopeLevel::ALL
        .into_iter()
        .find(|l| l.depth() == resource.depth());
    let requested = level.and_then(|l| w.current.permission_requests.get(&l).copied());
    let asked = app_right(&w.current, resource.clone(), wanted);
    let Some(requested) = requested else {
        prop_assert!(asked.is_err(), "granted at an unrequested level: {asked:?}");
        return Ok(None);
    };
    prop_assert_eq!(asked.is_err(), wanted > requested, "{:?}", asked);
    let granted = app_right(&w.current, resource, wanted.min(requested)).unwrap();
    prop_assert!(granted.right <= requested);
    Ok(Some(granted))
}

/// Adding an app right that fits the current manifest to a consent never turns an ALLOW into
/// a DENY.
#[test]
fn adding_an_app_right_never_takes_an_allow_away() {
    monotone(
        "adding_an_app_right_never_takes_an_allow_away",
        (consented_world(), ask(), select(PATHS.to_vec()), right()),
        |(w, q, resource, wanted)| {
            let Some(granted) = fitting(&w, resource, wanted)? else {
                return Err(TestCaseError::reject("the manifest requests nothing there"));
            };
            // An app right replaces a resolved request at its resource, so one below it lowers
            // the app there on purpose (DESIGN.md §8); the property is about adding.
            let consent = w.snapshot().consent;
            if consent
                .iter()
                .flat_map(|c| &c.resolved_requests)
                .any(|r| r.resource == granted.resource && r.right > granted.right)
            {
                return Err(TestCaseError::reject(
                    "a lower right replaces a resolved request",
                ));
            }
            let query = q.query();
            let before = decide_query(&w, &query);
            let after = decide_with(&w, &with_app_right(&w, &granted), &query);
            keeps_allow(&before, &after)
        },
    );
}

proptest! {
    /// An app right never lets the app above the manifest's current request: every effective
    /// app grant is within the request at its level, and a check that only the new right
    /// allows asks for no more than that right, at or below its resource.
    #[test]
    fn an_app_right_never_allows_above_the_request(
        w in world(),
        q in ask(),
        resource in select(PATHS.to_vec()),
        wanted in right(),
    ) {
        let Some(granted) = fitting(&w, resource, wanted)? else {
            return Ok(());
        };
        let snapshot = with_app_right(&w, &granted);
        if let Some(effective) = snapshot.effective() {
            for g in &effective.app_rights {
                let requested = w.current.permission_requests.get(&g.scope_level);
                prop_assert!(requested.is_some_and(|r| g.right <= *r), "{g:?} above {requested:?}");
            }
        }
        let query = q.query();
        let before = decide_query(&w, &query);
        let after = decide_with(&w, &snapshot, &query);
        if after.allowed && !before.allowed {
            let permission = query.permission.expect("only a permission check can gain an ALLOW");
            prop_assert!(granted.resource.covers(&query.resource), "{granted:?} for {query:?}");
            prop_assert!(permission.required_right() <= granted.right, "{permission} needs more than {granted:?}");
        }
    }
}
