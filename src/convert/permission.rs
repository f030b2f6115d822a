//! PermissionService answers: access questions and decisions, GetAppScopes, external permission
//! grants, the consent prompt and context tokens.

use super::*;

/// A decision for the wire, evaluated at `checked_at`.
pub fn decision_to_proto(d: Decision, checked_at: Revision) -> proto::CheckAccessResponse {
    proto::CheckAccessResponse {
        allowed: d.allowed,
        reason: reason_to_proto(d.reason).into(),
        message: d.message,
        checked_at: checked_at.token(),
        trace: d
            .trace
            .into_iter()
            .map(|s| proto::TraceStep {
                step: s.step.as_str().to_owned(),
                passed: s.passed,
                detail: s.detail,
            })
            .collect(),
    }
}

/// A GetAppScopes report for the wire.
pub fn app_scopes_to_proto(r: AppScopes, checked_at: Revision) -> proto::GetAppScopesResponse {
    proto::GetAppScopesResponse {
        whitelisting_enabled: r.whitelisting_enabled,
        whitelisted: r.whitelisted,
        consent: Some(proto::ConsentInfo {
            status: consent_status_to_proto(&r.consent.state).into(),
            approved_by: r
                .consent
                .approved_by
                .map(|p| p.to_string())
                .unwrap_or_default(),
            approved_at: r.consent.approved_at.map(timestamp_to_proto),
            approved_manifest_revision: r.consent.approved_manifest_revision,
            current_manifest_revision: r.consent.current_manifest_revision,
        }),
        effective_scopes: r.effective_scopes.iter().map(|s| s.to_string()).collect(),
        pending_scopes: r.pending_scopes.iter().map(|s| s.to_string()).collect(),
        pending_permission_requests: r
            .pending_permission_requests
            .into_iter()
            .map(permission_request_to_proto)
            .collect(),
        pending_allow_app_only: r.pending_allow_app_only,
        pending_policy: r
            .pending_policy
            .map_or(proto::Policy::Unspecified, policy_to_proto)
            .into(),
        content_access: content_access_to_proto(r.content_access).into(),
        run_as: run_as_to_proto(r.run_as).into(),
        webhooks: r.webhooks,
        database_mirroring: r.database_mirroring,
        app_grants: r.app_grants.iter().map(resolved_request_to_proto).collect(),
        policy: reported_policy_to_proto(r.policy).into(),
        allow_app_only: r.allow_app_only,
        reapproval_required: !r.reapproval_reasons.is_empty(),
        reapproval_reasons: r
            .reapproval_reasons
            .iter()
            .map(|r| r.as_str().to_owned())
            .collect(),
        checked_at: checked_at.token(),
    }
}

/// A user's external permission grant for the wire.
pub fn grant_to_proto(g: &GrantView) -> proto::ExternalPermissionGrant {
    proto::ExternalPermissionGrant {
        permission_id: g.permission_id.to_string(),
        group_id: g.group_id.to_string(),
        group_name: g.group_name.clone(),
        name: g.name.clone(),
        external_id: g.external_id.clone(),
        granted_by: g.granted_by.to_string(),
        granted_at: Some(timestamp_to_proto(g.granted_at)),
        expires_at: g.expires_at.map(timestamp_to_proto),
    }
}

/// An approver for the wire.
pub fn approver_to_proto(a: domain::Approver) -> proto::Approver {
    match a {
        domain::Approver::Administrator => proto::Approver::Administrator,
        domain::Approver::AppManager => proto::Approver::AppManager,
    }
}

/// The consent prompt for the wire.
pub fn consent_prompt_to_proto(
    p: domain::ConsentPrompt,
    checked_at: Revision,
) -> proto::GetConsentPromptResponse {
    proto::GetConsentPromptResponse {
        app_id: p.app_id.to_string(),
        name: p.name.to_string(),
        kind: app_kind_to_proto(p.kind).into(),
        manifest_revision: p.manifest_revision,
        scopes: p.scopes.iter().map(|s| s.to_string()).collect(),
        permission_requests: p
            .permission_requests
            .into_iter()
            .map(permission_request_to_proto)
            .collect(),
        mandatory: p.mandatory,
        approvers: p
            .approvers
            .into_iter()
            .map(|a| approver_to_proto(a).into())
            .collect(),
        changes: p
            .changes
            .into_iter()
            .map(|c| proto::ConsentChange {
                change: c.change.as_str().to_owned(),
                from: c.from,
                to: c.to,
            })
            .collect(),
        checked_at: checked_at.token(),
    }
}

// Context tokens (docs/rules.md §8)

/// An IssueContextToken answer: the signed token, its expiry and a message, or the refusal.
pub fn token_to_proto(
    outcome: Result<(String, std::time::SystemTime, String), Decision>,
    checked_at: Revision,
) -> proto::IssueContextTokenResponse {
    let (issued, reason, message, token, expires_at) = match outcome {
        Ok((token, expires, message)) => (true, Reason::Allowed, message, token, Some(expires)),
        Err(d) => (false, d.reason, d.message, String::new(), None),
    };
    proto::IssueContextTokenResponse {
        issued,
        reason: reason_to_proto(reason).into(),
        message,
        token,
        expires_at: expires_at.map(prost_types::Timestamp::from),
        checked_at: checked_at.token(),
    }
}
