//! The AdminService's requests into commands. A write's command is what its store call takes;
//! a listing's is a [`Listed`] of what selects its items. A command whose parts each have a type
//! of their own is a tuple of them, in the request's order; the others are named structs.

use super::{Listed, Parse, Parsing};
use crate::convert::{
    api_user_from_proto, app_kind_from_proto, capabilities_from_proto,
    external_permission_from_proto, group_spec_from_proto, manifest_from_proto,
    optional_timestamp_from_proto, resolved_requests_from_proto, right_from_proto,
    roles_from_proto, whitelist_entry_from_proto,
};
use crate::domain::{
    ApiUser, AppId, AppKind, AuditTarget, Capabilities, ClientId, Environment, ExternalPermission,
    GroupId, Manifest, Name, PermissionId, Principal, ResolvedRequest, ResourcePath, Revision,
    Right, RoleSet, Tenant, TenantBounds, TenantId, Timestamp, UserId, ValidationError, Viewer,
    WhitelistEntry,
};
use crate::proto::*;
use crate::service::paging::Listing;
use crate::service::status::ServiceError;
use crate::store::{AuditFilter, GroupSpec};

/// RegisterApp: a new application at manifest revision 1.
#[derive(Debug, Clone)]
pub struct NewApp {
    /// Its id.
    pub app_id: AppId,
    /// Its display name.
    pub name: Name,
    /// Standard or custom.
    pub kind: AppKind,
    /// What it asks for.
    pub manifest: Manifest,
}

/// ApproveConsent: an approval of the manifest revision the approver reviewed.
#[derive(Debug, Clone)]
pub struct Approval {
    /// The tenant.
    pub tenant: TenantId,
    /// The app approved.
    pub app_id: AppId,
    /// The manifest revision reviewed (at least 1).
    pub manifest_revision: i64,
    /// The manifest's permission requests, each resolved to a resource.
    pub resolved: Vec<ResolvedRequest>,
}

/// CreateClient: a new client (its key is made by the handler).
#[derive(Debug, Clone)]
pub struct NewClient {
    /// Its id.
    pub client_id: ClientId,
    /// The tenants it may act in.
    pub tenants: TenantBounds,
    /// What it may do.
    pub capabilities: Capabilities,
}

/// GrantExternalPermission: a user's grant, with its expiry.
#[derive(Debug, Clone)]
pub struct ExternalGrant {
    /// The tenant.
    pub tenant: TenantId,
    /// The user granted.
    pub user: UserId,
    /// The permission.
    pub permission: PermissionId,
    /// When the grant ends, if it does.
    pub expires_at: Option<Timestamp>,
}

/// A required `manifest_revision`.
fn manifest_revision(revision: i64) -> Result<i64, ValidationError> {
    if revision < 1 {
        let problem =
            "is required: name the manifest revision you reviewed (see ListApps or GetAppScopes)";
        return Err(ValidationError::new("manifest_revision", problem));
    }
    Ok(revision)
}

// Tenants, users and their rights.

impl Parse for PutTenantRequest {
    type Command = Tenant;
    fn parse(self, cx: &Parsing<'_>) -> Result<Tenant, ServiceError> {
        Ok(Tenant {
            tenant_id: cx.tenant(self.tenant_id)?,
            environment: Environment::parse("environment", &self.environment)?,
            whitelisting_enabled: self.whitelisting_enabled,
        })
    }
}

impl Parse for ListTenantsRequest {
    type Command = Listed<TenantBounds, TenantId>;
    fn parse(self, cx: &Parsing<'_>) -> Result<Self::Command, ServiceError> {
        let bounds = cx.caller.tenants.clone();
        let listing = bounds
            .to_strings()
            .iter()
            .fold(Listing::new("tenants"), |q, t| q.field(t));
        let page = cx.page(self.page_size, &self.page_token, &listing)?;
        Ok(Listed {
            of: bounds,
            page,
            listing,
        })
    }
}

impl Parse for PutUserRequest {
    type Command = (TenantId, UserId, RoleSet);
    fn parse(self, cx: &Parsing<'_>) -> Result<Self::Command, ServiceError> {
        let tenant = cx.tenant(self.tenant_id)?;
        let user = UserId::parse("user_id", self.user_id)?;
        let roles = roles_from_proto("roles", &self.roles)?;
        Ok((tenant, user, roles))
    }
}

/// Requests that name a user in a tenant and nothing else.
macro_rules! tenant_user {
    ($($request:ty),+) => {
        $(impl Parse for $request {
            type Command = (TenantId, UserId);
            fn parse(self, cx: &Parsing<'_>) -> Result<Self::Command, ServiceError> {
                let tenant = cx.tenant(self.tenant_id)?;
                Ok((tenant, UserId::parse("user_id", self.user_id)?))
            }
        })+
    };
}

tenant_user!(DeleteUserRequest, DeleteApiUserRequest);

/// Listings of one tenant's `$position`-keyed items, named `$name` in their page tokens.
macro_rules! tenant_listing {
    ($($request:ty => $name:literal, $position:ty;)+) => {
        $(impl Parse for $request {
            type Command = Listed<TenantId, $position>;
            fn parse(self, cx: &Parsing<'_>) -> Result<Self::Command, ServiceError> {
                let tenant = cx.tenant(self.tenant_id)?;
                let listing = Listing::new($name).field(tenant.as_str());
                let page = cx.page(self.page_size, &self.page_token, &listing)?;
                Ok(Listed { of: tenant, page, listing })
            }
        })+
    };
}

tenant_listing! {
    ListUsersRequest => "users", UserId;
    ListApiUsersRequest => "api_users", UserId;
    ListConsentsRequest => "consents", AppId;
    ListWhitelistEntriesRequest => "whitelist", AppId;
}

/// Requests about a user's or an app's right at a resource: the tenant, who holds the right
/// (the field named first), the resource and the right.
macro_rules! right_at {
    ($holder:ident: $id:ty => $($request:ty),+) => {
        $(impl Parse for $request {
            type Command = (TenantId, $id, ResourcePath, Right);
            fn parse(self, cx: &Parsing<'_>) -> Result<Self::Command, ServiceError> {
                let tenant = cx.tenant(self.tenant_id)?;
                let holder = <$id>::parse(stringify!($holder), self.$holder)?;
                let resource = ResourcePath::parse("resource", &self.resource)?;
                let right = right_from_proto("right", self.right)?;
                Ok((tenant, holder, resource, right))
            }
        })+
    };
}

right_at!(user_id: UserId => GrantUserRightRequest, RevokeUserRightRequest);

impl Parse for ListUserRightsRequest {
    type Command = Listed<(TenantId, UserId), ResourcePath>;
    fn parse(self, cx: &Parsing<'_>) -> Result<Self::Command, ServiceError> {
        let tenant = cx.tenant(self.tenant_id)?;
        let user = UserId::parse("user_id", self.user_id)?;
        let listing = Listing::new("rights")
            .field(tenant.as_str())
            .field(user.as_str());
        let page = cx.page(self.page_size, &self.page_token, &listing)?;
        Ok(Listed {
            of: (tenant, user),
            page,
            listing,
        })
    }
}

impl Parse for PutApiUserRequest {
    type Command = (TenantId, UserId, ApiUser);
    fn parse(self, cx: &Parsing<'_>) -> Result<Self::Command, ServiceError> {
        let tenant = cx.tenant(self.tenant_id)?;
        let user = UserId::parse("user_id", self.user_id)?;
        let api_user = api_user_from_proto(&self.scopes, self.as_user)?;
        Ok((tenant, user, api_user))
    }
}

// Apps, consent and the whitelist.

impl Parse for RegisterAppRequest {
    type Command = NewApp;
    fn parse(self, _cx: &Parsing<'_>) -> Result<NewApp, ServiceError> {
        Ok(NewApp {
            app_id: AppId::parse("app_id", self.app_id)?,
            name: Name::parse("name", &self.name)?,
            kind: app_kind_from_proto("kind", self.kind)?,
            manifest: manifest_from_proto("manifest", self.manifest.as_ref())?,
        })
    }
}

impl Parse for UpdateAppManifestRequest {
    type Command = (AppId, Manifest);
    fn parse(self, _cx: &Parsing<'_>) -> Result<Self::Command, ServiceError> {
        let app_id = AppId::parse("app_id", self.app_id)?;
        let manifest = manifest_from_proto("manifest", self.manifest.as_ref())?;
        Ok((app_id, manifest))
    }
}

impl Parse for UnregisterAppRequest {
    type Command = AppId;
    fn parse(self, _cx: &Parsing<'_>) -> Result<AppId, ServiceError> {
        Ok(AppId::parse("app_id", self.app_id)?)
    }
}

impl Parse for ListAppsRequest {
    type Command = Listed<(), AppId>;
    fn parse(self, cx: &Parsing<'_>) -> Result<Self::Command, ServiceError> {
        let listing = Listing::new("apps");
        let page = cx.page(self.page_size, &self.page_token, &listing)?;
        Ok(Listed {
            of: (),
            page,
            listing,
        })
    }
}

impl Parse for ApproveConsentRequest {
    type Command = Approval;
    fn parse(self, cx: &Parsing<'_>) -> Result<Approval, ServiceError> {
        let tenant = cx.tenant(self.tenant_id)?;
        let app_id = AppId::parse("app_id", self.app_id)?;
        let manifest_revision = manifest_revision(self.manifest_revision)?;
        let resolved = resolved_requests_from_proto("resolved_requests", &self.resolved_requests)?;
        Ok(Approval {
            tenant,
            app_id,
            manifest_revision,
            resolved,
        })
    }
}

/// Requests that name an app in a tenant and nothing else.
macro_rules! tenant_app {
    ($($request:ty),+) => {
        $(impl Parse for $request {
            type Command = (TenantId, AppId);
            fn parse(self, cx: &Parsing<'_>) -> Result<Self::Command, ServiceError> {
                let tenant = cx.tenant(self.tenant_id)?;
                Ok((tenant, AppId::parse("app_id", self.app_id)?))
            }
        })+
    };
}

tenant_app!(RevokeConsentRequest, DeleteWhitelistEntryRequest);

impl Parse for PutWhitelistEntryRequest {
    type Command = (TenantId, AppId, WhitelistEntry);
    fn parse(self, cx: &Parsing<'_>) -> Result<Self::Command, ServiceError> {
        let tenant = cx.tenant(self.tenant_id)?;
        let app_id = AppId::parse("app_id", self.app_id)?;
        let entry = whitelist_entry_from_proto(&self.allowed_scopes, self.content_access)?;
        Ok((tenant, app_id, entry))
    }
}

// External permission groups, their permissions and grants.

/// CreatePermissionGroup and UpdatePermissionGroup carry the same fields.
macro_rules! group_spec {
    ($($request:ty),+) => {
        $(impl Parse for $request {
            type Command = (TenantId, GroupSpec);
            fn parse(self, cx: &Parsing<'_>) -> Result<Self::Command, ServiceError> {
                let tenant = cx.tenant(self.tenant_id)?;
                let spec = group_spec_from_proto(
                    &self.group_id,
                    &self.name,
                    &self.description,
                    &self.managers,
                    &self.grantors,
                    &self.visible_to,
                )?;
                Ok((tenant, spec))
            }
        })+
    };
}

group_spec!(CreatePermissionGroupRequest, UpdatePermissionGroupRequest);

impl Parse for DeletePermissionGroupRequest {
    type Command = (TenantId, GroupId);
    fn parse(self, cx: &Parsing<'_>) -> Result<Self::Command, ServiceError> {
        let tenant = cx.tenant(self.tenant_id)?;
        Ok((tenant, GroupId::parse("group_id", self.group_id)?))
    }
}

impl Parse for ListPermissionGroupsRequest {
    type Command = Listed<(TenantId, Viewer), GroupId>;
    fn parse(self, cx: &Parsing<'_>) -> Result<Self::Command, ServiceError> {
        let tenant = cx.tenant(self.tenant_id)?;
        let viewer = cx.viewer();
        let listing = Listing::new("groups")
            .field(tenant.as_str())
            .field(&viewer.principal().to_string());
        let page = cx.page(self.page_size, &self.page_token, &listing)?;
        Ok(Listed {
            of: (tenant, viewer),
            page,
            listing,
        })
    }
}

impl Parse for CreateExternalPermissionRequest {
    type Command = (TenantId, ExternalPermission);
    fn parse(self, cx: &Parsing<'_>) -> Result<Self::Command, ServiceError> {
        let tenant = cx.tenant(&self.tenant_id)?;
        Ok((tenant, external_permission_from_proto(&self)?))
    }
}

impl Parse for DeleteExternalPermissionRequest {
    type Command = (TenantId, PermissionId);
    fn parse(self, cx: &Parsing<'_>) -> Result<Self::Command, ServiceError> {
        let tenant = cx.tenant(self.tenant_id)?;
        Ok((
            tenant,
            PermissionId::parse("permission_id", self.permission_id)?,
        ))
    }
}

impl Parse for GrantExternalPermissionRequest {
    type Command = ExternalGrant;
    fn parse(self, cx: &Parsing<'_>) -> Result<ExternalGrant, ServiceError> {
        Ok(ExternalGrant {
            tenant: cx.tenant(self.tenant_id)?,
            user: UserId::parse("user_id", self.user_id)?,
            permission: PermissionId::parse("permission_id", self.permission_id)?,
            expires_at: optional_timestamp_from_proto("expires_at", self.expires_at.as_ref())?,
        })
    }
}

impl Parse for RevokeExternalPermissionRequest {
    type Command = (TenantId, UserId, PermissionId);
    fn parse(self, cx: &Parsing<'_>) -> Result<Self::Command, ServiceError> {
        let tenant = cx.tenant(self.tenant_id)?;
        let user = UserId::parse("user_id", self.user_id)?;
        let permission = PermissionId::parse("permission_id", self.permission_id)?;
        Ok((tenant, user, permission))
    }
}

// API clients and the audit log.

impl Parse for CreateClientRequest {
    type Command = NewClient;
    fn parse(self, _cx: &Parsing<'_>) -> Result<NewClient, ServiceError> {
        Ok(NewClient {
            client_id: ClientId::parse("client_id", self.client_id)?,
            tenants: TenantBounds::parse("tenants", &self.tenants)?,
            capabilities: capabilities_from_proto("capabilities", &self.capabilities)?,
        })
    }
}

impl Parse for RevokeClientRequest {
    type Command = ClientId;
    fn parse(self, _cx: &Parsing<'_>) -> Result<ClientId, ServiceError> {
        Ok(ClientId::parse("client_id", self.client_id)?)
    }
}

impl Parse for ListClientsRequest {
    type Command = Listed<(), ClientId>;
    fn parse(self, cx: &Parsing<'_>) -> Result<Self::Command, ServiceError> {
        cx.caller.require_all_tenants("listing clients")?;
        let listing = Listing::new("clients");
        let page = cx.page(self.page_size, &self.page_token, &listing)?;
        Ok(Listed {
            of: (),
            page,
            listing,
        })
    }
}

impl Parse for ListAuditEventsRequest {
    type Command = Listed<AuditFilter, Revision>;
    fn parse(self, cx: &Parsing<'_>) -> Result<Self::Command, ServiceError> {
        let tenant_id = TenantId::parse_optional("tenant_id", &self.tenant_id)?;
        if let Some(t) = &tenant_id {
            cx.caller.require_tenant(t)?;
        }
        let actor = match self.actor.as_str() {
            "" => None,
            actor => Some(Principal::parse("actor", actor)?),
        };
        let target = match self.target.as_str() {
            "" => None,
            target => Some(AuditTarget::parse("target", target)?),
        };
        let since = optional_timestamp_from_proto("since", self.since.as_ref())?;
        let bounds = &cx.caller.tenants;
        let micros = since.map(|t| t.as_micros().to_string());
        let listing = bounds.to_strings().iter().fold(
            Listing::new("audit")
                .field(&self.tenant_id)
                .field(&self.target)
                .field(&self.actor)
                .optional(micros.as_deref()),
            |q, t| q.field(t),
        );
        let page = cx.page(self.page_size, &self.page_token, &listing)?;
        let filter = AuditFilter {
            tenant_id,
            target,
            actor,
            since,
            visible_to: Some(bounds.clone()),
        };
        Ok(Listed {
            of: filter,
            page,
            listing,
        })
    }
}

// Site-level app rights (docs/rules.md §8).

right_at!(app_id: AppId => GrantAppRightRequest, RevokeAppRightRequest);
