//! The validation steps of each PermissionService handler (`src/service/permission.rs`), in the
//! handler's order, for a caller bound to every tenant that may assert users. A change to a
//! handler's validation belongs here too; a request type without an arm fails the target.

use consentry::config::DEFAULT_MAX_BATCH;
use consentry::convert as cv;
use consentry::domain::{
    AppId, ExternalId, GroupId, PermissionId, Revision, TenantId, UserId, Valid, ValidationError,
};
use consentry::proto::*;
use consentry::service::paging::{Listing, page_request};
use consentry::service::status::ServiceError;

use crate::requests::{Checked, Verdict, run};

/// What a request's consistency asks for, as the handlers' `wanted` reads it.
fn wanted(c: Option<&Consistency>) -> Valid<()> {
    use consistency::Requirement;
    if let Some(Requirement::AtLeastAsFresh(token)) = c.and_then(|c| c.requirement.as_ref()) {
        Revision::parse_token("consistency.at_least_as_fresh", token)?;
    }
    Ok(())
}

/// The tenant first, then the access question, as `PermissionApi::query` does.
fn query(mut req: CheckAccessRequest) -> Result<(), ServiceError> {
    let tenant = TenantId::parse("tenant_id", std::mem::take(&mut req.tenant_id))?;
    req.tenant_id = tenant.into();
    cv::access_query_from_proto(req)?;
    Ok(())
}

fn tenant_user(tenant: &str, user: &str) -> Valid<(TenantId, UserId)> {
    Ok((
        TenantId::parse("tenant_id", tenant)?,
        UserId::parse("user_id", user)?,
    ))
}

fn ok() -> Checked {
    Ok(Vec::new())
}

/// Decodes `bytes` as the PermissionService request `name` and validates it as its handler
/// does; `None` for a name that is not one of its request types.
pub fn validate(name: &str, bytes: &[u8]) -> Option<Verdict> {
    Some(match name {
        "CheckAccessRequest" => run(bytes, |mut r: CheckAccessRequest| {
            let consistency = r.consistency.take();
            query(r)?;
            wanted(consistency.as_ref())?;
            ok()
        }),
        "CheckAccessBatchRequest" => run(bytes, |r: CheckAccessBatchRequest| {
            if r.items.len() > DEFAULT_MAX_BATCH {
                Err(ValidationError::new("items", "too many items"))?;
            }
            for (index, item) in r.items.into_iter().enumerate() {
                let in_item = |e: ServiceError| ServiceError::Item {
                    index,
                    source: Box::new(e),
                };
                if item.consistency.is_some() {
                    let e = ValidationError::new("consistency", "items carry no consistency");
                    return Err(in_item(e.into()));
                }
                query(item).map_err(in_item)?;
            }
            wanted(r.consistency.as_ref())?;
            ok()
        }),
        "ListExternalPermissionsRequest" => run(bytes, |r: ListExternalPermissionsRequest| {
            let (tenant, user) = tenant_user(&r.tenant_id, &r.user_id)?;
            GroupId::parse_optional("group_id", &r.group_id)?;
            let viewer = match AppId::parse_optional("app_id", &r.app_id)? {
                Some(app) => format!("app:{app}"),
                None => "client:fuzz".to_owned(),
            };
            let listing = Listing::new("grants")
                .field(tenant.as_str())
                .field(user.as_str())
                .field(&r.group_id)
                .field(&viewer);
            page_request::<(GroupId, PermissionId)>(
                &crate::mirror_admin::FUZZ_SECRET,
                r.page_size,
                &r.page_token,
                &listing,
            )?;
            wanted(r.consistency.as_ref())?;
            ok()
        }),
        "CheckExternalPermissionRequest" => run(bytes, |r: CheckExternalPermissionRequest| {
            tenant_user(&r.tenant_id, &r.user_id)?;
            match (
                r.permission_id.is_empty(),
                r.group_id.is_empty(),
                r.external_id.is_empty(),
            ) {
                (false, true, true) => {
                    PermissionId::parse("permission_id", &r.permission_id)?;
                }
                (true, false, false) => {
                    GroupId::parse("group_id", &r.group_id)?;
                    ExternalId::parse("external_id", &r.external_id)?;
                }
                _ => Err(ValidationError::new("permission_id", "name the permission"))?,
            }
            AppId::parse_optional("app_id", &r.app_id)?;
            wanted(r.consistency.as_ref())?;
            ok()
        }),
        "GetAppScopesRequest" => run(bytes, |r: GetAppScopesRequest| {
            TenantId::parse("tenant_id", &r.tenant_id)?;
            AppId::parse("app_id", &r.app_id)?;
            wanted(r.consistency.as_ref())?;
            ok()
        }),
        "GetConsentPromptRequest" => run(bytes, |r: GetConsentPromptRequest| {
            TenantId::parse("tenant_id", &r.tenant_id)?;
            AppId::parse("app_id", &r.app_id)?;
            wanted(r.consistency.as_ref())?;
            ok()
        }),
        "IssueContextTokenRequest" => run(bytes, |mut r: IssueContextTokenRequest| {
            let consistency = r.consistency.take();
            let tenant = TenantId::parse("tenant_id", std::mem::take(&mut r.tenant_id))?;
            r.tenant_id = tenant.into();
            cv::token_request_from_proto(r)?;
            wanted(consistency.as_ref())?;
            ok()
        }),
        "GetSigningKeysRequest" => run(bytes, |_: GetSigningKeysRequest| ok()),
        _ => return None,
    })
}
