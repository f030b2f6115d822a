//! Conversions between the generated proto types and the domain, in one place. Incoming values
//! are validated here (unknown or unspecified enums, malformed ids and paths become
//! [`ValidationError`]s); outgoing values are plain mappings. Each request message of both
//! services parses into its command through [`Parse`] (in `parse/`), the one validation its
//! handler and the fuzz targets share.

use crate::domain::{
    self, AppScopes, ConsentState, Decision, GrantView, Manifest, ManifestParts, PermissionRequest,
    Reason, ReportedPolicy, ResolvedRequest, ResourcePath, Revision, Timestamp, Valid,
    ValidationError,
};
use crate::proto;
use crate::store::{AuditEvent, ClientRecord, GroupSpec};

mod admin;
pub mod authzen;
pub mod envoy;
mod parse;
mod permission;

pub use admin::*;
pub use parse::*;
pub use permission::*;

/// Decodes a proto enum value, rejecting unknown numbers.
fn known<E: TryFrom<i32>>(field: &str, value: i32) -> Valid<E> {
    E::try_from(value)
        .map_err(|_| ValidationError::new(field, format_args!("{value} is not a known value")))
}

/// The two functions between a domain enum and its proto enum whose variants share their names:
/// `$from(field, value)` (an unknown or unspecified value is a [`ValidationError`] naming the
/// field) and `$to(value)`.
macro_rules! required_enum {
    ($domain:ident, $proto:ident, $from:ident, $to:ident, $missing:literal, [$($variant:ident),+ $(,)?]) => {
        #[doc = concat!("A required `", stringify!($domain), "`.")]
        pub fn $from(field: &str, value: i32) -> Valid<domain::$domain> {
            match known::<proto::$proto>(field, value)? {
                proto::$proto::Unspecified => Err(ValidationError::new(field, $missing)),
                $(proto::$proto::$variant => Ok(domain::$domain::$variant),)+
            }
        }

        #[doc = concat!("A `", stringify!($domain), "` for the wire.")]
        pub fn $to(value: domain::$domain) -> proto::$proto {
            match value {
                $(domain::$domain::$variant => proto::$proto::$variant,)+
            }
        }
    };
}

required_enum!(
    Role,
    Role,
    role_from_proto,
    role_to_proto,
    "a role is required (ROLE_UNSPECIFIED given)",
    [GeneralAdmin, UserAdmin, PermissionManager, Delegate]
);
required_enum!(
    Right,
    Right,
    right_from_proto,
    right_to_proto,
    "a right is required (RIGHT_UNSPECIFIED given)",
    [Read, Write, Manage, FullControl]
);
required_enum!(
    ScopeLevel,
    ScopeLevel,
    scope_level_from_proto,
    scope_level_to_proto,
    "a scope level is required (SCOPE_LEVEL_UNSPECIFIED given)",
    [Tenancy, SiteCollection, Web, List]
);
required_enum!(
    AppKind,
    AppKind,
    app_kind_from_proto,
    app_kind_to_proto,
    "a kind is required (APP_KIND_UNSPECIFIED given)",
    [Standard, Custom]
);
required_enum!(
    ManagerAccess,
    ManagerAccess,
    manager_access_from_proto,
    manager_access_to_proto,
    "an access is required (MANAGER_ACCESS_UNSPECIFIED given)",
    [Read, ReadWrite]
);
required_enum!(
    Capability,
    Capability,
    capability_from_proto,
    capability_to_proto,
    "a capability is required (CAPABILITY_UNSPECIFIED given)",
    [Query, Admin, AppManager, AssertUser]
);

/// A `RunAs`; unspecified is USER_CONTEXT.
pub fn run_as_from_proto(field: &str, value: i32) -> Valid<domain::RunAs> {
    use proto::RunAs as P;
    Ok(match known::<P>(field, value)? {
        P::Unspecified | P::UserContext => domain::RunAs::UserContext,
        P::SystemUser => domain::RunAs::SystemUser,
    })
}

/// A `RunAs` for the wire.
pub fn run_as_to_proto(run_as: domain::RunAs) -> proto::RunAs {
    match run_as {
        domain::RunAs::UserContext => proto::RunAs::UserContext,
        domain::RunAs::SystemUser => proto::RunAs::SystemUser,
    }
}

/// A manifest `Policy`; unspecified is USER_AND_APP, and APP_ONLY is never set in a manifest.
pub fn policy_from_proto(field: &str, value: i32) -> Valid<domain::Policy> {
    use proto::Policy as P;
    match known::<P>(field, value)? {
        P::Unspecified | P::UserAndApp => Ok(domain::Policy::UserAndApp),
        P::UserOnly => Ok(domain::Policy::UserOnly),
        P::AppOnly => Err(ValidationError::new(
            field,
            "POLICY_APP_ONLY is only ever reported; ask for app-only calls with allow_app_only",
        )),
    }
}

/// A manifest `Policy` for the wire.
pub fn policy_to_proto(policy: domain::Policy) -> proto::Policy {
    match policy {
        domain::Policy::UserAndApp => proto::Policy::UserAndApp,
        domain::Policy::UserOnly => proto::Policy::UserOnly,
    }
}

/// A reported policy for the wire.
pub fn reported_policy_to_proto(policy: ReportedPolicy) -> proto::Policy {
    match policy {
        ReportedPolicy::UserAndApp => proto::Policy::UserAndApp,
        ReportedPolicy::UserOnly => proto::Policy::UserOnly,
        ReportedPolicy::AppOnly => proto::Policy::AppOnly,
    }
}

/// A `ContentAccess`; unspecified is OWN_CONTENT.
pub fn content_access_from_proto(field: &str, value: i32) -> Valid<domain::ContentAccess> {
    use proto::ContentAccess as P;
    Ok(match known::<P>(field, value)? {
        P::Unspecified | P::OwnContent => domain::ContentAccess::OwnContent,
        P::OnBehalfOfManagedUsers => domain::ContentAccess::OnBehalfOfManagedUsers,
    })
}

/// A `ContentAccess` for the wire.
pub fn content_access_to_proto(access: domain::ContentAccess) -> proto::ContentAccess {
    match access {
        domain::ContentAccess::OwnContent => proto::ContentAccess::OwnContent,
        domain::ContentAccess::OnBehalfOfManagedUsers => {
            proto::ContentAccess::OnBehalfOfManagedUsers
        }
    }
}

/// A decision `Reason` for the wire.
pub fn reason_to_proto(reason: Reason) -> proto::Reason {
    match reason {
        Reason::Allowed => proto::Reason::Allowed,
        Reason::UnknownTenant => proto::Reason::UnknownTenant,
        Reason::UnknownApp => proto::Reason::UnknownApp,
        Reason::AppNotWhitelisted => proto::Reason::AppNotWhitelisted,
        Reason::NoConsent => proto::Reason::NoConsent,
        Reason::ConsentRevoked => proto::Reason::ConsentRevoked,
        Reason::ReapprovalRequired => proto::Reason::ReapprovalRequired,
        Reason::ScopeNotGranted => proto::Reason::ScopeNotGranted,
        Reason::ImpersonationNotAllowed => proto::Reason::ImpersonationNotAllowed,
        Reason::UserRequired => proto::Reason::UserRequired,
        Reason::AppPermissionInsufficient => proto::Reason::AppPermissionInsufficient,
        Reason::UserPermissionInsufficient => proto::Reason::UserPermissionInsufficient,
    }
}

/// A `ConsentState` for the wire.
pub fn consent_status_to_proto(state: &ConsentState) -> proto::ConsentStatus {
    match state {
        ConsentState::NotConsented => proto::ConsentStatus::NotConsented,
        ConsentState::Revoked => proto::ConsentStatus::Revoked,
        ConsentState::ReapprovalRequired(_) => proto::ConsentStatus::ReapprovalRequired,
        ConsentState::Approved => proto::ConsentStatus::Approved,
    }
}

/// A timestamp for the wire.
pub fn timestamp_to_proto(t: Timestamp) -> prost_types::Timestamp {
    let (seconds, nanos) = t.to_seconds_nanos();
    prost_types::Timestamp { seconds, nanos }
}

/// A timestamp from the wire: nanos within a second, and a time from year 1 to year 9999.
pub fn timestamp_from_proto(field: &str, t: &prost_types::Timestamp) -> Valid<Timestamp> {
    Timestamp::parse_seconds_nanos(field, t.seconds, t.nanos)
}

/// A manifest from the wire, validated.
pub fn manifest_from_proto(field: &str, m: Option<&proto::Manifest>) -> Valid<Manifest> {
    let Some(m) = m else {
        return Err(ValidationError::new(field, "a manifest is required"));
    };
    let permission_requests = m
        .permission_requests
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let item = format!("{field}.permission_requests[{i}]");
            Ok(PermissionRequest {
                scope_level: scope_level_from_proto(&format!("{item}.scope_level"), r.scope_level)?,
                right: right_from_proto(&format!("{item}.right"), r.right)?,
            })
        })
        .collect::<Valid<_>>()?;
    Manifest::parse(ManifestParts {
        run_as: run_as_from_proto(&format!("{field}.run_as"), m.run_as)?,
        webhooks: m.webhooks,
        database_mirroring: m.database_mirroring,
        scopes: m.scopes.clone(),
        permission_requests,
        allow_app_only: m.allow_app_only,
        policy: policy_from_proto(&format!("{field}.policy"), m.policy)?,
    })
    .map_err(|e| e.within(field))
}

/// A manifest for the wire.
pub fn manifest_to_proto(m: &Manifest) -> proto::Manifest {
    proto::Manifest {
        run_as: run_as_to_proto(m.run_as).into(),
        webhooks: m.webhooks,
        database_mirroring: m.database_mirroring,
        scopes: m.scopes.iter().map(|s| s.to_string()).collect(),
        permission_requests: m.requests().map(permission_request_to_proto).collect(),
        allow_app_only: m.allow_app_only,
        policy: policy_to_proto(m.policy).into(),
    }
}

/// A permission request for the wire.
pub fn permission_request_to_proto(r: PermissionRequest) -> proto::PermissionRequest {
    proto::PermissionRequest {
        scope_level: scope_level_to_proto(r.scope_level).into(),
        right: right_to_proto(r.right).into(),
    }
}

/// Resolved requests from the wire, each well-formed (matching them to a manifest is the domain's job).
pub fn resolved_requests_from_proto(
    field: &str,
    items: &[proto::ResolvedRequest],
) -> Valid<Vec<ResolvedRequest>> {
    items
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let item = format!("{field}[{i}]");
            Ok(ResolvedRequest {
                scope_level: scope_level_from_proto(&format!("{item}.scope_level"), r.scope_level)?,
                right: right_from_proto(&format!("{item}.right"), r.right)?,
                resource: ResourcePath::parse(&format!("{item}.resource"), &r.resource)?,
            })
        })
        .collect()
}

/// A resolved request for the wire.
pub fn resolved_request_to_proto(r: &ResolvedRequest) -> proto::ResolvedRequest {
    proto::ResolvedRequest {
        scope_level: scope_level_to_proto(r.scope_level).into(),
        right: right_to_proto(r.right).into(),
        resource: r.resource.to_string(),
    }
}

/// Decodes each value of a repeated enum field as `field[i]`.
fn each<T>(field: &str, values: &[i32], from: fn(&str, i32) -> Valid<T>) -> Valid<Vec<T>> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| from(&format!("{field}[{i}]"), *v))
        .collect()
}

/// A set of roles from the wire (`roles[i]` names a bad one).
pub fn roles_from_proto(field: &str, roles: &[i32]) -> Valid<domain::RoleSet> {
    Ok(domain::RoleSet::of(each(field, roles, role_from_proto)?))
}

/// A set of capabilities from the wire (`capabilities[i]` names a bad one).
pub fn capabilities_from_proto(field: &str, caps: &[i32]) -> Valid<domain::Capabilities> {
    Ok(domain::Capabilities::of(each(
        field,
        caps,
        capability_from_proto,
    )?))
}

/// An optional timestamp from the wire.
pub fn optional_timestamp_from_proto(
    field: &str,
    t: Option<&prost_types::Timestamp>,
) -> Valid<Option<Timestamp>> {
    t.map(|t| timestamp_from_proto(field, t)).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_and_unknown_enums_are_rejected_where_required() {
        assert!(
            role_from_proto("roles[0]", 0)
                .unwrap_err()
                .problem
                .contains("required")
        );
        assert!(
            role_from_proto("roles[0]", 99)
                .unwrap_err()
                .problem
                .contains("99")
        );
        assert!(right_from_proto("right", 0).is_err());
        assert!(scope_level_from_proto("scope_level", 0).is_err());
        assert!(app_kind_from_proto("kind", 0).is_err());
        assert!(manager_access_from_proto("access", 0).is_err());
        assert!(capability_from_proto("capabilities[0]", 0).is_err());
    }

    #[test]
    fn unspecified_defaults_apply_where_the_contract_says() {
        assert_eq!(
            run_as_from_proto("run_as", 0).unwrap(),
            domain::RunAs::UserContext
        );
        assert_eq!(
            policy_from_proto("policy", 0).unwrap(),
            domain::Policy::UserAndApp
        );
        assert_eq!(
            content_access_from_proto("c", 0).unwrap(),
            domain::ContentAccess::OwnContent
        );
        assert!(policy_from_proto("policy", proto::Policy::AppOnly as i32).is_err());
        assert!(run_as_from_proto("run_as", 7).is_err());
    }

    #[test]
    fn manifests_round_trip_and_name_the_nested_field_at_fault() {
        let wire = proto::Manifest {
            run_as: proto::RunAs::SystemUser as i32,
            webhooks: true,
            database_mirroring: false,
            scopes: vec!["b".into(), "a".into()],
            permission_requests: vec![proto::PermissionRequest {
                scope_level: proto::ScopeLevel::Web as i32,
                right: proto::Right::Write as i32,
            }],
            allow_app_only: true,
            policy: proto::Policy::UserOnly as i32,
        };
        let m = manifest_from_proto("manifest", Some(&wire)).unwrap();
        let back = manifest_to_proto(&m);
        assert_eq!(back.scopes, ["a", "b"]);
        assert_eq!(manifest_from_proto("manifest", Some(&back)).unwrap(), m);

        let bad = proto::Manifest {
            scopes: vec!["a".into(), "a".into()],
            ..wire.clone()
        };
        assert_eq!(
            manifest_from_proto("manifest", Some(&bad))
                .unwrap_err()
                .field,
            "manifest.scopes[1]"
        );
        let bad = proto::Manifest {
            permission_requests: vec![proto::PermissionRequest {
                scope_level: 0,
                right: 1,
            }],
            ..wire
        };
        assert_eq!(
            manifest_from_proto("manifest", Some(&bad))
                .unwrap_err()
                .field,
            "manifest.permission_requests[0].scope_level"
        );
        assert!(manifest_from_proto("manifest", None).is_err());
    }

    #[test]
    fn timestamps_round_trip_and_reject_bad_nanos() {
        let t = Timestamp::from_micros(1_234_567);
        assert_eq!(
            timestamp_from_proto("t", &timestamp_to_proto(t)).unwrap(),
            t
        );
        assert!(
            timestamp_from_proto(
                "t",
                &prost_types::Timestamp {
                    seconds: 0,
                    nanos: -1
                }
            )
            .is_err()
        );
        assert!(
            timestamp_from_proto(
                "t",
                &prost_types::Timestamp {
                    seconds: i64::MAX,
                    nanos: 0
                }
            )
            .is_err()
        );
    }
}
