//! The PermissionService's requests into commands.

use super::{Listed, Parse, Parsing, wanted};
use crate::cache::Wanted;
use crate::domain::{
    AccessQuery, AppId, ExternalId, GroupId, PermissionId, PermissionRef, TenantAccessQuery,
    TenantId, UserId, ValidationError, Viewer,
};
use crate::proto::*;
use crate::service::paging::Listing;
use crate::service::status::ServiceError;
use crate::store::GrantKey;
use crate::token::{TokenRequest, parse_audience, parse_ttl};

/// CheckAccess: the access question and where its facts come from.
#[derive(Debug, Clone)]
pub struct Check {
    /// The question.
    pub query: AccessQuery,
    /// The consistency asked for.
    pub wanted: Wanted,
}

/// CheckAccessBatch: the questions, answered at one revision.
#[derive(Debug, Clone)]
pub struct CheckBatch {
    /// The questions, in the request's order.
    pub queries: Vec<AccessQuery>,
    /// The consistency asked for, for all of them.
    pub wanted: Wanted,
}

/// ListExternalPermissions: whose grants, in which group, seen by whom.
#[derive(Debug, Clone)]
pub struct GrantListing {
    /// The tenant.
    pub tenant: TenantId,
    /// The user whose grants are listed.
    pub user: UserId,
    /// Only this group, if named.
    pub group: Option<GroupId>,
    /// Who is looking (decides which groups are visible).
    pub viewer: Viewer,
    /// The consistency asked for.
    pub wanted: Wanted,
}

/// CheckExternalPermission: one grant of one user, seen by whom.
#[derive(Debug, Clone)]
pub struct GrantCheck {
    /// The tenant.
    pub tenant: TenantId,
    /// The user.
    pub user: UserId,
    /// The permission, by id or by group and external id.
    pub which: PermissionRef,
    /// Who is looking.
    pub viewer: Viewer,
    /// The consistency asked for.
    pub wanted: Wanted,
}

/// GetAppScopes and GetConsentPrompt: one app in one tenant.
#[derive(Debug, Clone)]
pub struct AppQuestion {
    /// The tenant.
    pub tenant: TenantId,
    /// The app.
    pub app: AppId,
    /// The consistency asked for.
    pub wanted: Wanted,
}

/// IssueContextToken: the access question (no scope, no permission) and what the token is for.
#[derive(Debug, Clone)]
pub struct TokenIssue {
    /// The question whose answer the token carries.
    pub query: AccessQuery,
    /// The audience and lifetime.
    pub token: TokenRequest,
    /// The consistency asked for.
    pub wanted: Wanted,
}

/// The access question of a CheckAccess request or batch item, its tenant first: parsed once,
/// and kept (its string moved, never copied).
fn access_query(cx: &Parsing<'_>, req: CheckAccessRequest) -> Result<AccessQuery, ServiceError> {
    let tenant = cx.tenant(req.tenant_id)?;
    Ok(AccessQuery::parse_owned(TenantAccessQuery {
        tenant_id: tenant,
        app_id: req.app_id,
        user_id: req.user_id,
        on_behalf_of: req.on_behalf_of,
        scope: req.scope,
        permission: req.permission,
        resource: req.resource,
        explain: req.explain,
    })?)
}

/// The viewer of an external permission query (docs/rules.md §4): the acting user, else the app
/// named in `app_id` (which needs `assert_user`), else the calling client. `app_id` is
/// validated whoever the viewer turns out to be, so a malformed one is refused even beside an
/// acting user.
fn external_viewer(cx: &Parsing<'_>, app_id: &str) -> Result<Viewer, ServiceError> {
    let app = AppId::parse_optional("app_id", app_id)?;
    if let Some(user) = cx.acting_user {
        return Ok(Viewer::User(user.clone()));
    }
    if let Some(app) = app {
        cx.caller.require_may_assert_user()?;
        return Ok(Viewer::App(app));
    }
    Ok(Viewer::Client(cx.caller.client_id.clone()))
}

impl Parse for CheckAccessRequest {
    type Command = Check;
    fn parse(mut self, cx: &Parsing<'_>) -> Result<Check, ServiceError> {
        let consistency = self.consistency.take();
        let query = access_query(cx, self)?;
        let wanted = wanted(consistency.as_ref())?;
        Ok(Check { query, wanted })
    }
}

impl Parse for CheckAccessBatchRequest {
    type Command = CheckBatch;
    fn parse(self, cx: &Parsing<'_>) -> Result<CheckBatch, ServiceError> {
        let max = cx.limits.max_batch;
        if self.items.len() > max {
            let problem = format!(
                "{} items; at most {max} are allowed in one batch",
                self.items.len()
            );
            return Err(ValidationError::new("items", problem).into());
        }
        let mut queries = Vec::with_capacity(self.items.len());
        for (index, item) in self.items.into_iter().enumerate() {
            let in_item = |e: ServiceError| ServiceError::Item {
                index,
                source: Box::new(e),
            };
            if item.consistency.is_some() {
                let problem = "items carry no consistency; set it on the batch";
                return Err(in_item(ValidationError::new("consistency", problem).into()));
            }
            queries.push(access_query(cx, item).map_err(in_item)?);
        }
        let wanted = wanted(self.consistency.as_ref())?;
        Ok(CheckBatch { queries, wanted })
    }
}

impl Parse for ListExternalPermissionsRequest {
    type Command = Listed<GrantListing, GrantKey>;
    fn parse(self, cx: &Parsing<'_>) -> Result<Self::Command, ServiceError> {
        let tenant = cx.tenant(self.tenant_id)?;
        let user = UserId::parse("user_id", self.user_id)?;
        let group = GroupId::parse_optional("group_id", &self.group_id)?;
        let viewer = external_viewer(cx, &self.app_id)?;
        let listing = Listing::new("grants")
            .field(tenant.as_str())
            .field(user.as_str())
            .field(&self.group_id)
            .field(&viewer.principal().to_string());
        let page = cx.page(self.page_size, &self.page_token, &listing)?;
        let wanted = wanted(self.consistency.as_ref())?;
        Ok(Listed {
            of: GrantListing {
                tenant,
                user,
                group,
                viewer,
                wanted,
            },
            page,
            listing,
        })
    }
}

impl Parse for CheckExternalPermissionRequest {
    type Command = GrantCheck;
    fn parse(self, cx: &Parsing<'_>) -> Result<GrantCheck, ServiceError> {
        let tenant = cx.tenant(self.tenant_id)?;
        let user = UserId::parse("user_id", self.user_id)?;
        let which = match (
            self.permission_id.is_empty(),
            self.group_id.is_empty(),
            self.external_id.is_empty(),
        ) {
            (false, true, true) => {
                PermissionRef::Id(PermissionId::parse("permission_id", self.permission_id)?)
            }
            (true, false, false) => PermissionRef::External(
                GroupId::parse("group_id", self.group_id)?,
                ExternalId::parse("external_id", &self.external_id)?,
            ),
            _ => {
                let problem = "name the permission by permission_id, or by group_id and external_id (not both)";
                return Err(ValidationError::new("permission_id", problem).into());
            }
        };
        let viewer = external_viewer(cx, &self.app_id)?;
        let wanted = wanted(self.consistency.as_ref())?;
        Ok(GrantCheck {
            tenant,
            user,
            which,
            viewer,
            wanted,
        })
    }
}

/// GetAppScopes and GetConsentPrompt ask the same of the same fields.
macro_rules! about_app {
    ($($request:ty),+) => {
        $(impl Parse for $request {
            type Command = AppQuestion;
            fn parse(self, cx: &Parsing<'_>) -> Result<AppQuestion, ServiceError> {
                let tenant = cx.tenant(self.tenant_id)?;
                let app = AppId::parse("app_id", self.app_id)?;
                let wanted = wanted(self.consistency.as_ref())?;
                Ok(AppQuestion { tenant, app, wanted })
            }
        })+
    };
}

about_app!(GetAppScopesRequest, GetConsentPromptRequest);

impl Parse for IssueContextTokenRequest {
    type Command = TokenIssue;
    fn parse(mut self, cx: &Parsing<'_>) -> Result<TokenIssue, ServiceError> {
        let consistency = self.consistency.take();
        // The tenant first, as in CheckAccess: outside the caller's bounds nothing else is looked at.
        let tenant = cx.tenant(std::mem::take(&mut self.tenant_id))?;
        // A token naming a user speaks for them: that needs assert_user, checked with the other
        // capabilities, before validation.
        if !self.user_id.is_empty() || !self.on_behalf_of.is_empty() {
            cx.caller.require_may_mint_for_user()?;
        }
        let query = AccessQuery::parse_owned(TenantAccessQuery {
            tenant_id: tenant,
            app_id: self.app_id,
            user_id: self.user_id,
            on_behalf_of: self.on_behalf_of,
            resource: self.resource,
            scope: String::new(),
            permission: String::new(),
            explain: false,
        })?;
        let token = TokenRequest {
            tenant_id: query.tenant_id.clone(),
            app_id: query.app_id.clone(),
            audience: parse_audience(&self.audience)?,
            ttl: parse_ttl(self.ttl_seconds)?,
        };
        let wanted = wanted(consistency.as_ref())?;
        Ok(TokenIssue {
            query,
            token,
            wanted,
        })
    }
}

/// GetSigningKeys carries nothing and needs no caller: its handler authenticates no one and
/// has nothing to parse, so this accepts every request (and the fuzz targets hold it to that).
impl Parse for GetSigningKeysRequest {
    type Command = ();
    fn parse(self, _cx: &Parsing<'_>) -> Result<(), ServiceError> {
        Ok(())
    }
}
