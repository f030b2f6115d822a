//! Consent: a tenant administrator's approval of an application, with the manifest they saw and
//! its permission requests resolved to concrete resources.

use std::collections::BTreeMap;

use super::app::{Manifest, ScopeLevel};
use super::error::{Valid, ValidationError};
use super::external::Principal;
use super::path::ResourcePath;
use super::rights::Right;
use super::time::Timestamp;

/// A permission request resolved by the approver to one resource whose depth matches its level.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResolvedRequest {
    /// The level of the request.
    pub scope_level: ScopeLevel,
    /// The right granted there: no higher than requested.
    pub right: Right,
    /// The resource: `/` for TENANCY, depth 1 for SITE_COLLECTION, 2 for WEB, 3 for LIST.
    pub resource: ResourcePath,
}

/// An application's consent in a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    /// `user:<id>`, or `client:<id>` for an app-manager activation.
    pub approved_by: Principal,
    /// When it was approved.
    pub approved_at: Timestamp,
    /// The manifest revision the approver saw.
    pub approved_manifest_revision: i64,
    /// The manifest as approved.
    pub approved_manifest: Manifest,
    /// The approved requests, resolved to resources, ordered by level.
    pub resolved_requests: Vec<ResolvedRequest>,
    /// Site-level app rights given since approval (GrantAppRight): one per resource, ordered by
    /// resource. They survive re-approval and go with a revocation.
    pub app_rights: Vec<ResolvedRequest>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
}

impl Consent {
    /// Whether the consent is in force (not revoked).
    pub fn is_active(&self) -> bool {
        self.revoked_at.is_none()
    }

    /// The consent revoked at `at`: its app rights go with it (a later approval starts
    /// without them).
    pub fn revoked(&self, at: Timestamp) -> Consent {
        Consent {
            app_rights: Vec::new(),
            revoked_at: Some(at),
            ..self.clone()
        }
    }

    /// The app right given at exactly `resource`, if any.
    pub fn app_right_at(&self, resource: &ResourcePath) -> Option<&ResolvedRequest> {
        self.app_rights.iter().find(|r| r.resource == *resource)
    }

    /// The consent with `right` added, replacing an app right at the same resource.
    pub fn with_app_right(&self, right: ResolvedRequest) -> Consent {
        let mut rights: BTreeMap<ResourcePath, ResolvedRequest> = self
            .app_rights
            .iter()
            .map(|r| (r.resource.clone(), r.clone()))
            .collect();
        rights.insert(right.resource.clone(), right);
        Consent {
            app_rights: rights.into_values().collect(),
            ..self.clone()
        }
    }

    /// The right the approved manifest requests at `level`: the most that any grant at that level
    /// may count for while this approval stands (docs/rules.md §2: a raise or a new level awaiting
    /// re-approval is pending, not effective).
    pub fn approved_right(&self, level: ScopeLevel) -> Option<Right> {
        self.approved_manifest
            .permission_requests
            .get(&level)
            .copied()
    }

    /// Checks that `granted` (an app right that fits the current manifest, [`app_right`]) is
    /// within what this consent approved at its level (docs/rules.md §8): a level the approval does
    /// not request is refused naming `resource` (no right at all can be given there), a right
    /// above the approved request naming `right`. A site owner cannot make a pending request
    /// effective.
    pub fn admit_app_right(&self, granted: ResolvedRequest) -> Valid<ResolvedRequest> {
        let ResolvedRequest {
            scope_level,
            right,
            resource,
        } = &granted;
        let Some(approved) = self.approved_right(*scope_level) else {
            return Err(ValidationError::new(
                "resource",
                format_args!(
                    "{resource} is at the level {scope_level}, which the manifest requests but the consent in force has not approved: the request is pending until an administrator approves the app again"
                ),
            ));
        };
        if *right > approved {
            return Err(ValidationError::new(
                "right",
                format_args!(
                    "{right} is above the approved request of {approved} at {scope_level}: a higher request is pending until an administrator approves the app again"
                ),
            ));
        }
        Ok(granted)
    }

    /// The consent without the app right at `resource`.
    pub fn without_app_right(&self, resource: &ResourcePath) -> Consent {
        Consent {
            app_rights: self
                .app_rights
                .iter()
                .filter(|r| r.resource != *resource)
                .cloned()
                .collect(),
            ..self.clone()
        }
    }
}

/// The app rights an approval keeps from the consent it replaces: all of them while that consent
/// is in force (re-approval), none after a revocation or without one.
pub fn carried_app_rights(existing: Option<&Consent>) -> Vec<ResolvedRequest> {
    existing
        .filter(|c| c.is_active())
        .map(|c| c.app_rights.clone())
        .unwrap_or_default()
}

/// Checks that an app right at `resource` fits `manifest` (the current one): `resource` has the
/// depth of a scope level the manifest requests, and `right` is no higher than that request
/// (docs/rules.md §8, with §2's depth rule). Returns it as the resolved request it adds; whether the
/// consent in force approved as much is [`Consent::admit_app_right`]'s to say.
pub fn app_right(
    manifest: &Manifest,
    resource: ResourcePath,
    right: Right,
) -> Valid<ResolvedRequest> {
    let depth = resource.depth();
    let Some(scope_level) = ScopeLevel::ALL.into_iter().find(|l| l.depth() == depth) else {
        return Err(ValidationError::new(
            "resource",
            format_args!(
                "{resource} is at depth {depth}; an app right is given at a scope level: `/` (TENANCY), depth 1 (SITE_COLLECTION), 2 (WEB) or 3 (LIST)"
            ),
        ));
    };
    let Some(&requested) = manifest.permission_requests.get(&scope_level) else {
        let requested: Vec<&str> = manifest
            .permission_requests
            .keys()
            .map(|l| l.as_str())
            .collect();
        return Err(ValidationError::new(
            "resource",
            format_args!(
                "{resource} is at the level {scope_level} (depth {depth}), which the manifest does not request (it requests {})",
                if requested.is_empty() {
                    "none".to_owned()
                } else {
                    requested.join(", ")
                }
            ),
        ));
    };
    if right > requested {
        return Err(ValidationError::new(
            "right",
            format_args!("{right} is above the manifest's request of {requested} at {scope_level}"),
        ));
    }
    Ok(ResolvedRequest {
        scope_level,
        right,
        resource,
    })
}

/// Checks that `resolved` resolves each of `manifest`'s permission requests exactly once, to a
/// resource of the right depth, with a right no higher than requested; returns them by level.
pub fn resolve_requests(
    manifest: &Manifest,
    resolved: Vec<ResolvedRequest>,
) -> Valid<Vec<ResolvedRequest>> {
    let mut by_level = BTreeMap::new();
    for (i, r) in resolved.into_iter().enumerate() {
        let field = format!("resolved_requests[{i}]");
        let Some(&requested) = manifest.permission_requests.get(&r.scope_level) else {
            return Err(ValidationError::new(
                field,
                format_args!(
                    "the manifest requests nothing at the level {}",
                    r.scope_level
                ),
            ));
        };
        if r.right > requested {
            return Err(ValidationError::new(
                field,
                format_args!(
                    "grants {} but the manifest requests at most {requested} at {}",
                    r.right, r.scope_level
                ),
            ));
        }
        let want = r.scope_level.depth();
        if r.resource.depth() != want {
            return Err(ValidationError::new(
                field,
                format_args!(
                    "{} is at depth {}; a {} request resolves to a path of depth {want}",
                    r.resource,
                    r.resource.depth(),
                    r.scope_level
                ),
            ));
        }
        if by_level.insert(r.scope_level, r).is_some() {
            return Err(ValidationError::new(
                field,
                "resolves a level that was already resolved",
            ));
        }
    }
    if let Some(missing) = manifest
        .permission_requests
        .keys()
        .find(|l| !by_level.contains_key(l))
    {
        return Err(ValidationError::new(
            "resolved_requests",
            format_args!("the manifest's request at the level {missing} is not resolved"),
        ));
    }
    Ok(by_level.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::resolved as rr;

    /// A manifest with `requests` and no scopes.
    fn manifest(requests: &[(ScopeLevel, Right)]) -> Manifest {
        crate::testing::manifest(&[], requests)
    }

    #[test]
    fn resolves_each_request_once_at_its_depth() {
        let m = manifest(&[
            (ScopeLevel::Web, Right::Write),
            (ScopeLevel::Tenancy, Right::Read),
        ]);
        let got = resolve_requests(
            &m,
            vec![
                rr(ScopeLevel::Web, Right::Read, "/hr/web1"),
                rr(ScopeLevel::Tenancy, Right::Read, "/"),
            ],
        )
        .unwrap();
        assert_eq!(got[0].scope_level, ScopeLevel::Tenancy);
        assert_eq!(got[1].resource.as_str(), "/hr/web1");
    }

    #[test]
    fn rejects_wrong_depth_higher_right_missing_extra_and_repeated() {
        let m = manifest(&[
            (ScopeLevel::List, Right::Write),
            (ScopeLevel::SiteCollection, Right::Read),
        ]);
        let ok_site = rr(ScopeLevel::SiteCollection, Right::Read, "/hr");
        let cases = [
            (
                vec![
                    rr(ScopeLevel::List, Right::Write, "/hr/web"),
                    ok_site.clone(),
                ],
                "depth 3",
            ),
            (
                vec![
                    rr(ScopeLevel::List, Right::Manage, "/a/b/c"),
                    ok_site.clone(),
                ],
                "at most WRITE",
            ),
            (
                vec![rr(ScopeLevel::List, Right::Read, "/a/b/c")],
                "SITE_COLLECTION is not resolved",
            ),
            (
                vec![
                    rr(ScopeLevel::List, Right::Read, "/a/b/c"),
                    ok_site.clone(),
                    rr(ScopeLevel::Web, Right::Read, "/a/b"),
                ],
                "requests nothing",
            ),
            (
                vec![
                    rr(ScopeLevel::List, Right::Read, "/a/b/c"),
                    ok_site.clone(),
                    rr(ScopeLevel::List, Right::Read, "/a/b/d"),
                ],
                "already resolved",
            ),
        ];
        for (resolved, why) in cases {
            let err = resolve_requests(&m, resolved).unwrap_err();
            assert!(err.problem.contains(why), "{why}: {err}");
        }
    }

    #[test]
    fn a_manifest_without_requests_needs_no_resolution() {
        assert_eq!(resolve_requests(&manifest(&[]), vec![]).unwrap(), vec![]);
    }
}
