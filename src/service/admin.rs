//! `consentry.v1.AdminService`: thin handlers that authenticate, check capability and tenant
//! bounds, validate (proto → domain), call the store, and map the answer back. The rules of
//! DESIGN.md §6 run inside the store's write transactions, through the domain's rule functions.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::status::ServiceError;
use crate::domain::ValidationError;

use super::auth::{Authenticator, CallContext, generate_key, hash_key};
use super::paging::{next_page_token, page_request};
use super::{Applied, Written};
use crate::convert as cv;
use crate::domain::{
    AppId, Capabilities, Capability, ClientId, Description, Environment, ExternalId,
    ExternalPermission, GroupId, Name, PermissionId, Principal, ResourcePath, RoleSet, Tenant,
    TenantBounds, TenantId, Timestamp, UserId, Valid, Viewer, WhitelistEntry,
};
use crate::proto::admin_service_server::AdminService;
use crate::proto::*;
use crate::store::{AuditFilter, GroupSpec, Store, WriteCtx};

/// The AdminService over a store.
pub struct AdminApi {
    store: Arc<dyn Store>,
    auth: Authenticator,
    applied: Applied,
}

impl AdminApi {
    /// The service over `store`; `applied` is told of every write before the reply leaves.
    pub fn new(store: Arc<dyn Store>, auth: Authenticator, applied: Applied) -> Self {
        Self {
            store,
            auth,
            applied,
        }
    }

    /// The request's freshness check, who is calling, and that the store can be reached (every
    /// admin call needs it; while it cannot, calls fail at once rather than wait).
    async fn context<T>(&self, request: &Request<T>) -> Result<CallContext, Status> {
        let caches = &self.applied.0;
        let at = caches.at()?;
        let cx = self.auth.context(request, Capability::Admin, at).await?;
        caches.require_store()?;
        Ok(cx)
    }

    /// Authenticates, then parses the tenant and checks it is within the caller's bounds.
    async fn tenant_context<T>(
        &self,
        request: &Request<T>,
        tenant: &str,
    ) -> Result<(CallContext, TenantId), Status> {
        let cx = self.context(request).await?;
        let tenant = TenantId::parse("tenant_id", tenant)?;
        cx.caller.require_tenant(&tenant)?;
        Ok((cx, tenant))
    }

    /// Records that this instance has seen a write, then hands back its token.
    async fn written(&self, written: Written) -> String {
        self.applied.wait_for(written).await;
        written.0.token()
    }
}

fn write_ctx(cx: CallContext) -> WriteCtx {
    WriteCtx {
        caller: (*cx.caller).clone(),
        acting_user: cx.acting_user,
        at: Timestamp::now(),
    }
}

fn roles_from_proto(roles: &[i32]) -> Valid<RoleSet> {
    let roles = roles
        .iter()
        .enumerate()
        .map(|(i, r)| cv::role_from_proto(&format!("roles[{i}]"), *r))
        .collect::<Valid<Vec<_>>>()?;
    Ok(RoleSet::of(roles))
}

fn capabilities_from_proto(caps: &[i32]) -> Valid<Capabilities> {
    let caps = caps
        .iter()
        .enumerate()
        .map(|(i, c)| cv::capability_from_proto(&format!("capabilities[{i}]"), *c))
        .collect::<Valid<Vec<_>>>()?;
    Ok(Capabilities::of(caps))
}

fn group_spec(
    group_id: &str,
    name: &str,
    description: &str,
    managers: &[Manager],
    grantors: &[String],
    visible_to: &[String],
) -> Valid<GroupSpec> {
    Ok(GroupSpec {
        group_id: GroupId::parse("group_id", group_id)?,
        name: Name::parse("name", name)?,
        description: Description::parse("description", description)?,
        acl: cv::group_acl_from_proto(managers, grantors, visible_to)?,
    })
}

/// The viewer of an admin listing: the acting user, else the calling client.
fn viewer(cx: &CallContext) -> Viewer {
    match &cx.acting_user {
        Some(user) => Viewer::User(user.clone()),
        None => Viewer::Client(cx.caller.client_id.clone()),
    }
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn put_tenant(
        &self,
        request: Request<PutTenantRequest>,
    ) -> Result<Response<PutTenantResponse>, Status> {
        let (cx, tenant_id) = self
            .tenant_context(&request, &request.get_ref().tenant_id)
            .await?;
        let req = request.into_inner();
        let tenant = Tenant {
            tenant_id,
            environment: Environment::parse("environment", &req.environment)?,
            whitelisting_enabled: req.whitelisting_enabled,
        };
        let (revision, created) = self.store.put_tenant(&write_ctx(cx), &tenant).await?;
        Ok(Response::new(PutTenantResponse {
            written_at: self.written(Written(revision)).await,
            created,
        }))
    }

    async fn list_tenants(
        &self,
        request: Request<ListTenantsRequest>,
    ) -> Result<Response<ListTenantsResponse>, Status> {
        let cx = self.context(&request).await?;
        let req = request.into_inner();
        let query = format!("tenants:{}", cx.caller.tenants.to_strings().join(","));
        let page = self
            .store
            .list_tenants(
                &cx.caller.tenants,
                &page_request(req.page_size, &req.page_token, &query)?,
            )
            .await?;
        Ok(Response::new(ListTenantsResponse {
            next_page_token: next_page_token(&page, &query),
            tenants: page
                .items
                .iter()
                .map(|t| crate::proto::Tenant {
                    tenant_id: t.tenant_id.to_string(),
                    environment: t.environment.to_string(),
                    whitelisting_enabled: t.whitelisting_enabled,
                })
                .collect(),
        }))
    }

    async fn put_user(
        &self,
        request: Request<PutUserRequest>,
    ) -> Result<Response<PutUserResponse>, Status> {
        let (cx, tenant) = self
            .tenant_context(&request, &request.get_ref().tenant_id)
            .await?;
        let req = request.into_inner();
        let user = UserId::parse("user_id", &req.user_id)?;
        let roles = roles_from_proto(&req.roles)?;
        let revision = self
            .store
            .put_user(&write_ctx(cx), &tenant, &user, roles)
            .await?;
        Ok(Response::new(PutUserResponse {
            written_at: self.written(Written(revision)).await,
        }))
    }

    async fn delete_user(
        &self,
        request: Request<DeleteUserRequest>,
    ) -> Result<Response<DeleteUserResponse>, Status> {
        let (cx, tenant) = self
            .tenant_context(&request, &request.get_ref().tenant_id)
            .await?;
        let user = UserId::parse("user_id", &request.get_ref().user_id)?;
        let revision = self
            .store
            .delete_user(&write_ctx(cx), &tenant, &user)
            .await?;
        Ok(Response::new(DeleteUserResponse {
            written_at: self.written(Written(revision)).await,
        }))
    }

    async fn grant_user_right(
        &self,
        request: Request<GrantUserRightRequest>,
    ) -> Result<Response<GrantUserRightResponse>, Status> {
        let (cx, tenant) = self
            .tenant_context(&request, &request.get_ref().tenant_id)
            .await?;
        let req = request.into_inner();
        let user = UserId::parse("user_id", &req.user_id)?;
        let resource = ResourcePath::parse("resource", &req.resource)?;
        let right = cv::right_from_proto("right", req.right)?;
        let revision = self
            .store
            .grant_user_right(&write_ctx(cx), &tenant, &user, &resource, right)
            .await?;
        Ok(Response::new(GrantUserRightResponse {
            written_at: self.written(Written(revision)).await,
        }))
    }

    async fn revoke_user_right(
        &self,
        request: Request<RevokeUserRightRequest>,
    ) -> Result<Response<RevokeUserRightResponse>, Status> {
        let (cx, tenant) = self
            .tenant_context(&request, &request.get_ref().tenant_id)
            .await?;
        let req = request.into_inner();
        let user = UserId::parse("user_id", &req.user_id)?;
        let resource = ResourcePath::parse("resource", &req.resource)?;
        let right = match req.right {
            0 => None,
            r => Some(cv::right_from_proto("right", r)?),
        };
        let revision = self
            .store
            .revoke_user_right(&write_ctx(cx), &tenant, &user, &resource, right)
            .await?;
        Ok(Response::new(RevokeUserRightResponse {
            written_at: self.written(Written(revision)).await,
        }))
    }

    async fn register_app(
        &self,
        request: Request<RegisterAppRequest>,
    ) -> Result<Response<RegisterAppResponse>, Status> {
        let cx = self.context(&request).await?;
        let req = request.into_inner();
        let app_id = AppId::parse("app_id", &req.app_id)?;
        let name = Name::parse("name", &req.name)?;
        let kind = cv::app_kind_from_proto("kind", req.kind)?;
        let manifest = cv::manifest_from_proto("manifest", req.manifest.as_ref())?;
        let revision = self
            .store
            .register_app(&write_ctx(cx), &app_id, &name, kind, &manifest)
            .await?;
        Ok(Response::new(RegisterAppResponse {
            written_at: self.written(Written(revision)).await,
            manifest_revision: 1,
        }))
    }

    async fn update_app_manifest(
        &self,
        request: Request<UpdateAppManifestRequest>,
    ) -> Result<Response<UpdateAppManifestResponse>, Status> {
        let cx = self.context(&request).await?;
        let req = request.into_inner();
        let app_id = AppId::parse("app_id", &req.app_id)?;
        let manifest = cv::manifest_from_proto("manifest", req.manifest.as_ref())?;
        let (revision, manifest_revision) = self
            .store
            .update_app_manifest(&write_ctx(cx), &app_id, &manifest)
            .await?;
        Ok(Response::new(UpdateAppManifestResponse {
            written_at: self.written(Written(revision)).await,
            manifest_revision,
        }))
    }

    async fn unregister_app(
        &self,
        request: Request<UnregisterAppRequest>,
    ) -> Result<Response<UnregisterAppResponse>, Status> {
        let cx = self.context(&request).await?;
        let app_id = AppId::parse("app_id", &request.get_ref().app_id)?;
        let revision = self.store.unregister_app(&write_ctx(cx), &app_id).await?;
        Ok(Response::new(UnregisterAppResponse {
            written_at: self.written(Written(revision)).await,
        }))
    }

    async fn approve_consent(
        &self,
        request: Request<ApproveConsentRequest>,
    ) -> Result<Response<ApproveConsentResponse>, Status> {
        let (cx, tenant) = self
            .tenant_context(&request, &request.get_ref().tenant_id)
            .await?;
        let req = request.into_inner();
        let app_id = AppId::parse("app_id", &req.app_id)?;
        if req.manifest_revision < 1 {
            let problem = "is required: name the manifest revision you reviewed (see ListApps or GetAppScopes)";
            return Err(ValidationError::new("manifest_revision", problem).into());
        }
        let resolved =
            cv::resolved_requests_from_proto("resolved_requests", &req.resolved_requests)?;
        let (revision, consent) = self
            .store
            .approve_consent(
                &write_ctx(cx),
                &tenant,
                &app_id,
                req.manifest_revision,
                resolved,
            )
            .await?;
        Ok(Response::new(ApproveConsentResponse {
            written_at: self.written(Written(revision)).await,
            consent: Some(cv::consent_to_proto(&tenant, &app_id, &consent)),
        }))
    }

    async fn revoke_consent(
        &self,
        request: Request<RevokeConsentRequest>,
    ) -> Result<Response<RevokeConsentResponse>, Status> {
        let (cx, tenant) = self
            .tenant_context(&request, &request.get_ref().tenant_id)
            .await?;
        let app_id = AppId::parse("app_id", &request.get_ref().app_id)?;
        let revision = self
            .store
            .revoke_consent(&write_ctx(cx), &tenant, &app_id)
            .await?;
        Ok(Response::new(RevokeConsentResponse {
            written_at: self.written(Written(revision)).await,
        }))
    }

    async fn put_whitelist_entry(
        &self,
        request: Request<PutWhitelistEntryRequest>,
    ) -> Result<Response<PutWhitelistEntryResponse>, Status> {
        let (cx, tenant) = self
            .tenant_context(&request, &request.get_ref().tenant_id)
            .await?;
        let req = request.into_inner();
        let app_id = AppId::parse("app_id", &req.app_id)?;
        let entry = WhitelistEntry {
            allowed_scopes: crate::domain::app::parse_scope_set(
                "allowed_scopes",
                &req.allowed_scopes,
            )?,
            content_access: cv::content_access_from_proto("content_access", req.content_access)?,
        };
        let revision = self
            .store
            .put_whitelist_entry(&write_ctx(cx), &tenant, &app_id, &entry)
            .await?;
        Ok(Response::new(PutWhitelistEntryResponse {
            written_at: self.written(Written(revision)).await,
        }))
    }

    async fn delete_whitelist_entry(
        &self,
        request: Request<DeleteWhitelistEntryRequest>,
    ) -> Result<Response<DeleteWhitelistEntryResponse>, Status> {
        let (cx, tenant) = self
            .tenant_context(&request, &request.get_ref().tenant_id)
            .await?;
        let app_id = AppId::parse("app_id", &request.get_ref().app_id)?;
        let revision = self
            .store
            .delete_whitelist_entry(&write_ctx(cx), &tenant, &app_id)
            .await?;
        Ok(Response::new(DeleteWhitelistEntryResponse {
            written_at: self.written(Written(revision)).await,
        }))
    }

    async fn create_permission_group(
        &self,
        request: Request<CreatePermissionGroupRequest>,
    ) -> Result<Response<CreatePermissionGroupResponse>, Status> {
        let (cx, tenant) = self
            .tenant_context(&request, &request.get_ref().tenant_id)
            .await?;
        let r = request.into_inner();
        let spec = group_spec(
            &r.group_id,
            &r.name,
            &r.description,
            &r.managers,
            &r.grantors,
            &r.visible_to,
        )?;
        let (revision, group) = self
            .store
            .create_group(&write_ctx(cx), &tenant, spec)
            .await?;
        Ok(Response::new(CreatePermissionGroupResponse {
            written_at: self.written(Written(revision)).await,
            group: Some(cv::group_to_proto(&tenant, &group, &[])),
        }))
    }

    async fn update_permission_group(
        &self,
        request: Request<UpdatePermissionGroupRequest>,
    ) -> Result<Response<UpdatePermissionGroupResponse>, Status> {
        let (cx, tenant) = self
            .tenant_context(&request, &request.get_ref().tenant_id)
            .await?;
        let r = request.into_inner();
        let spec = group_spec(
            &r.group_id,
            &r.name,
            &r.description,
            &r.managers,
            &r.grantors,
            &r.visible_to,
        )?;
        let (revision, group) = self
            .store
            .update_group(&write_ctx(cx), &tenant, spec)
            .await?;
        Ok(Response::new(UpdatePermissionGroupResponse {
            written_at: self.written(Written(revision)).await,
            group: Some(cv::group_to_proto(
                &tenant,
                &group.group,
                &group.permissions,
            )),
        }))
    }

    async fn delete_permission_group(
        &self,
        request: Request<DeletePermissionGroupRequest>,
    ) -> Result<Response<DeletePermissionGroupResponse>, Status> {
        let (cx, tenant) = self
            .tenant_context(&request, &request.get_ref().tenant_id)
            .await?;
        let group = GroupId::parse("group_id", &request.get_ref().group_id)?;
        let revision = self
            .store
            .delete_group(&write_ctx(cx), &tenant, &group)
            .await?;
        Ok(Response::new(DeletePermissionGroupResponse {
            written_at: self.written(Written(revision)).await,
        }))
    }

    async fn create_external_permission(
        &self,
        request: Request<CreateExternalPermissionRequest>,
    ) -> Result<Response<CreateExternalPermissionResponse>, Status> {
        let (cx, tenant) = self
            .tenant_context(&request, &request.get_ref().tenant_id)
            .await?;
        let r = request.into_inner();
        let permission = ExternalPermission {
            permission_id: PermissionId::parse("permission_id", &r.permission_id)?,
            group_id: GroupId::parse("group_id", &r.group_id)?,
            name: Name::parse("name", &r.name)?,
            description: Description::parse("description", &r.description)?,
            external_id: ExternalId::parse("external_id", &r.external_id)?,
        };
        let revision = self
            .store
            .create_permission(&write_ctx(cx), &tenant, &permission)
            .await?;
        Ok(Response::new(CreateExternalPermissionResponse {
            written_at: self.written(Written(revision)).await,
        }))
    }

    async fn delete_external_permission(
        &self,
        request: Request<DeleteExternalPermissionRequest>,
    ) -> Result<Response<DeleteExternalPermissionResponse>, Status> {
        let (cx, tenant) = self
            .tenant_context(&request, &request.get_ref().tenant_id)
            .await?;
        let permission = PermissionId::parse("permission_id", &request.get_ref().permission_id)?;
        let revision = self
            .store
            .delete_permission(&write_ctx(cx), &tenant, &permission)
            .await?;
        Ok(Response::new(DeleteExternalPermissionResponse {
            written_at: self.written(Written(revision)).await,
        }))
    }

    async fn grant_external_permission(
        &self,
        request: Request<GrantExternalPermissionRequest>,
    ) -> Result<Response<GrantExternalPermissionResponse>, Status> {
        let (cx, tenant) = self
            .tenant_context(&request, &request.get_ref().tenant_id)
            .await?;
        let r = request.into_inner();
        let user = UserId::parse("user_id", &r.user_id)?;
        let permission = PermissionId::parse("permission_id", &r.permission_id)?;
        let expires_at = r
            .expires_at
            .as_ref()
            .map(|t| cv::timestamp_from_proto("expires_at", t))
            .transpose()?;
        let revision = self
            .store
            .grant_external(&write_ctx(cx), &tenant, &user, &permission, expires_at)
            .await?;
        Ok(Response::new(GrantExternalPermissionResponse {
            written_at: self.written(Written(revision)).await,
        }))
    }

    async fn revoke_external_permission(
        &self,
        request: Request<RevokeExternalPermissionRequest>,
    ) -> Result<Response<RevokeExternalPermissionResponse>, Status> {
        let (cx, tenant) = self
            .tenant_context(&request, &request.get_ref().tenant_id)
            .await?;
        let r = request.into_inner();
        let user = UserId::parse("user_id", &r.user_id)?;
        let permission = PermissionId::parse("permission_id", &r.permission_id)?;
        let revision = self
            .store
            .revoke_external(&write_ctx(cx), &tenant, &user, &permission)
            .await?;
        Ok(Response::new(RevokeExternalPermissionResponse {
            written_at: self.written(Written(revision)).await,
        }))
    }

    async fn create_client(
        &self,
        request: Request<CreateClientRequest>,
    ) -> Result<Response<CreateClientResponse>, Status> {
        let cx = self.context(&request).await?;
        let r = request.into_inner();
        let client_id = ClientId::parse("client_id", &r.client_id)?;
        let tenants = TenantBounds::parse("tenants", &r.tenants)?;
        let capabilities = capabilities_from_proto(&r.capabilities)?;
        let key = generate_key().map_err(|e| ServiceError::Internal(e.to_string()))?;
        let revision = self
            .store
            .create_client(
                Some(&write_ctx(cx)),
                &client_id,
                &tenants,
                capabilities,
                &hash_key(&key),
            )
            .await?;
        Ok(Response::new(CreateClientResponse {
            written_at: self.written(Written(revision)).await,
            client_id: client_id.to_string(),
            key,
        }))
    }

    async fn revoke_client(
        &self,
        request: Request<RevokeClientRequest>,
    ) -> Result<Response<RevokeClientResponse>, Status> {
        let cx = self.context(&request).await?;
        let client_id = ClientId::parse("client_id", &request.get_ref().client_id)?;
        let revision = self
            .store
            .revoke_client(Some(&write_ctx(cx)), &client_id)
            .await?;
        Ok(Response::new(RevokeClientResponse {
            written_at: self.written(Written(revision)).await,
        }))
    }

    async fn list_audit_events(
        &self,
        request: Request<ListAuditEventsRequest>,
    ) -> Result<Response<ListAuditEventsResponse>, Status> {
        let cx = self.context(&request).await?;
        let r = request.into_inner();
        let tenant_id = TenantId::parse_optional("tenant_id", &r.tenant_id)?;
        if let Some(t) = &tenant_id {
            cx.caller.require_tenant(t)?;
        }
        let filter = AuditFilter {
            tenant_id,
            target: (!r.target.is_empty()).then(|| r.target.clone()),
            actor: if r.actor.is_empty() {
                None
            } else {
                Some(Principal::parse("actor", &r.actor)?)
            },
            since: r
                .since
                .as_ref()
                .map(|t| cv::timestamp_from_proto("since", t))
                .transpose()?,
            visible_to: Some(cx.caller.tenants.clone()),
        };
        let query = format!(
            "audit:{}:{}:{}:{:?}:{}",
            r.tenant_id,
            r.target,
            r.actor,
            filter.since,
            cx.caller.tenants.to_strings().join(",")
        );
        let page = self
            .store
            .list_audit_events(&filter, &page_request(r.page_size, &r.page_token, &query)?)
            .await?;
        Ok(Response::new(ListAuditEventsResponse {
            next_page_token: next_page_token(&page, &query),
            events: page.items.iter().map(cv::audit_event_to_proto).collect(),
        }))
    }

    async fn list_apps(
        &self,
        request: Request<ListAppsRequest>,
    ) -> Result<Response<ListAppsResponse>, Status> {
        self.context(&request).await?;
        let r = request.into_inner();
        let page = self
            .store
            .list_apps(&page_request(r.page_size, &r.page_token, "apps")?)
            .await?;
        Ok(Response::new(ListAppsResponse {
            next_page_token: next_page_token(&page, "apps"),
            apps: page.items.iter().map(cv::app_to_proto).collect(),
        }))
    }

    async fn list_clients(
        &self,
        request: Request<ListClientsRequest>,
    ) -> Result<Response<ListClientsResponse>, Status> {
        let cx = self.context(&request).await?;
        cx.caller.require_all_tenants("listing clients")?;
        let r = request.into_inner();
        let page = self
            .store
            .list_clients(&page_request(r.page_size, &r.page_token, "clients")?)
            .await?;
        Ok(Response::new(ListClientsResponse {
            next_page_token: next_page_token(&page, "clients"),
            clients: page.items.iter().map(cv::client_to_proto).collect(),
        }))
    }

    async fn list_users(
        &self,
        request: Request<ListUsersRequest>,
    ) -> Result<Response<ListUsersResponse>, Status> {
        let (_, tenant) = self
            .tenant_context(&request, &request.get_ref().tenant_id)
            .await?;
        let r = request.into_inner();
        let query = format!("users:{tenant}");
        let page = self
            .store
            .list_users(&tenant, &page_request(r.page_size, &r.page_token, &query)?)
            .await?;
        Ok(Response::new(ListUsersResponse {
            next_page_token: next_page_token(&page, &query),
            users: page
                .items
                .iter()
                .map(|(user, roles)| TenantUser {
                    tenant_id: tenant.to_string(),
                    user_id: user.to_string(),
                    roles: roles.roles().map(|r| cv::role_to_proto(r).into()).collect(),
                })
                .collect(),
        }))
    }

    async fn list_consents(
        &self,
        request: Request<ListConsentsRequest>,
    ) -> Result<Response<ListConsentsResponse>, Status> {
        let (_, tenant) = self
            .tenant_context(&request, &request.get_ref().tenant_id)
            .await?;
        let r = request.into_inner();
        let query = format!("consents:{tenant}");
        let page = self
            .store
            .list_consents(&tenant, &page_request(r.page_size, &r.page_token, &query)?)
            .await?;
        Ok(Response::new(ListConsentsResponse {
            next_page_token: next_page_token(&page, &query),
            consents: page
                .items
                .iter()
                .map(|(app, c)| cv::consent_to_proto(&tenant, app, c))
                .collect(),
        }))
    }

    async fn list_whitelist_entries(
        &self,
        request: Request<ListWhitelistEntriesRequest>,
    ) -> Result<Response<ListWhitelistEntriesResponse>, Status> {
        let (_, tenant) = self
            .tenant_context(&request, &request.get_ref().tenant_id)
            .await?;
        let r = request.into_inner();
        let query = format!("whitelist:{tenant}");
        let page = self
            .store
            .list_whitelist_entries(&tenant, &page_request(r.page_size, &r.page_token, &query)?)
            .await?;
        Ok(Response::new(ListWhitelistEntriesResponse {
            next_page_token: next_page_token(&page, &query),
            entries: page
                .items
                .iter()
                .map(|(app, e)| cv::whitelist_entry_to_proto(&tenant, app, e))
                .collect(),
        }))
    }

    async fn list_permission_groups(
        &self,
        request: Request<ListPermissionGroupsRequest>,
    ) -> Result<Response<ListPermissionGroupsResponse>, Status> {
        let (cx, tenant) = self
            .tenant_context(&request, &request.get_ref().tenant_id)
            .await?;
        let r = request.into_inner();
        let viewer = viewer(&cx);
        let query = format!("groups:{tenant}:{}", viewer.principal());
        let page = self
            .store
            .list_groups(
                &tenant,
                &viewer,
                &page_request(r.page_size, &r.page_token, &query)?,
            )
            .await?;
        Ok(Response::new(ListPermissionGroupsResponse {
            next_page_token: next_page_token(&page, &query),
            groups: page
                .items
                .iter()
                .map(|g| cv::group_to_proto(&tenant, &g.group, &g.permissions))
                .collect(),
        }))
    }

    async fn list_user_rights(
        &self,
        request: Request<ListUserRightsRequest>,
    ) -> Result<Response<ListUserRightsResponse>, Status> {
        let (_, tenant) = self
            .tenant_context(&request, &request.get_ref().tenant_id)
            .await?;
        let r = request.into_inner();
        let user = UserId::parse("user_id", &r.user_id)?;
        let query = format!("rights:{tenant}:{user}");
        let page = self
            .store
            .list_user_rights(
                &tenant,
                &user,
                &page_request(r.page_size, &r.page_token, &query)?,
            )
            .await?;
        Ok(Response::new(ListUserRightsResponse {
            next_page_token: next_page_token(&page, &query),
            rights: page
                .items
                .iter()
                .map(|(resource, right)| UserRight {
                    tenant_id: tenant.to_string(),
                    user_id: user.to_string(),
                    resource: resource.to_string(),
                    right: cv::right_to_proto(*right).into(),
                })
                .collect(),
        }))
    }
}
