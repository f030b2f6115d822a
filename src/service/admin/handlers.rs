//! The AdminService's handlers, grouped by area: tenants and users, apps and consent, external
//! permissions, clients and audit, site-level app rights. Each validates its request in the closure it hands to
//! [`AdminApi::write`] or [`AdminApi::list`].

use tonic::{Request, Response, Status};

use super::{AdminApi, viewer};
use crate::convert as cv;
use crate::domain::{
    AppId, AuditTarget, ClientId, Environment, GroupId, Name, PermissionId, Principal,
    ResourcePath, Tenant, TenantBounds, TenantId, UserId, ValidationError,
};
use crate::proto::admin_service_server::AdminService;
use crate::proto::*;
use crate::service::auth::{generate_key, hash_key};
use crate::service::paging::Listing;
use crate::service::status::ServiceError;
use crate::store::AuditFilter;

#[tonic::async_trait]
impl AdminService for AdminApi {
    // Tenants, users and their rights.

    async fn put_tenant(
        &self,
        request: Request<PutTenantRequest>,
    ) -> Result<Response<PutTenantResponse>, Status> {
        let (written_at, created) = self
            .tenant_write(request, async |cx, tenant_id, r| {
                let tenant = Tenant {
                    tenant_id,
                    environment: Environment::parse("environment", &r.environment)?,
                    whitelisting_enabled: r.whitelisting_enabled,
                };
                Ok(self.store.put_tenant(&cx, &tenant).await?)
            })
            .await?;
        Ok(Response::new(PutTenantResponse {
            written_at,
            created,
        }))
    }

    async fn list_tenants(
        &self,
        request: Request<ListTenantsRequest>,
    ) -> Result<Response<ListTenantsResponse>, Status> {
        let cx = self.context(&request).await?;
        let r = request.get_ref();
        let bounds = &cx.caller.tenants;
        let query = bounds
            .to_strings()
            .iter()
            .fold(Listing::new("tenants"), |q, t| q.field(t));
        let (tenants, next_page_token) = self
            .list(
                (r.page_size, &r.page_token),
                &query,
                async |page| self.store.list_tenants(bounds, &page).await,
                cv::tenant_to_proto,
            )
            .await?;
        Ok(Response::new(ListTenantsResponse {
            tenants,
            next_page_token,
        }))
    }

    async fn put_user(
        &self,
        request: Request<PutUserRequest>,
    ) -> Result<Response<PutUserResponse>, Status> {
        let (written_at, ()) = self
            .tenant_write(request, async |cx, tenant, r| {
                let user = UserId::parse("user_id", &r.user_id)?;
                let roles = cv::roles_from_proto("roles", &r.roles)?;
                Ok(self.store.put_user(&cx, &tenant, &user, roles).await?)
            })
            .await?;
        Ok(Response::new(PutUserResponse { written_at }))
    }

    async fn delete_user(
        &self,
        request: Request<DeleteUserRequest>,
    ) -> Result<Response<DeleteUserResponse>, Status> {
        let (written_at, ()) = self
            .tenant_write(request, async |cx, tenant, r| {
                let user = UserId::parse("user_id", &r.user_id)?;
                Ok(self.store.delete_user(&cx, &tenant, &user).await?)
            })
            .await?;
        Ok(Response::new(DeleteUserResponse { written_at }))
    }

    async fn list_users(
        &self,
        request: Request<ListUsersRequest>,
    ) -> Result<Response<ListUsersResponse>, Status> {
        let (_, tenant) = self.tenant_context(&request).await?;
        let r = request.get_ref();
        let (users, next_page_token) = self
            .list(
                (r.page_size, &r.page_token),
                &Listing::new("users").field(tenant.as_str()),
                async |page| self.store.list_users(&tenant, &page).await,
                |(user, roles)| cv::tenant_user_to_proto(&tenant, user, roles),
            )
            .await?;
        Ok(Response::new(ListUsersResponse {
            users,
            next_page_token,
        }))
    }

    async fn grant_user_right(
        &self,
        request: Request<GrantUserRightRequest>,
    ) -> Result<Response<GrantUserRightResponse>, Status> {
        let (written_at, ()) = self
            .tenant_write(request, async |cx, tenant, r| {
                let user = UserId::parse("user_id", &r.user_id)?;
                let resource = ResourcePath::parse("resource", &r.resource)?;
                let right = cv::right_from_proto("right", r.right)?;
                let store = &self.store;
                Ok(store
                    .grant_user_right(&cx, &tenant, &user, &resource, right)
                    .await?)
            })
            .await?;
        Ok(Response::new(GrantUserRightResponse { written_at }))
    }

    async fn revoke_user_right(
        &self,
        request: Request<RevokeUserRightRequest>,
    ) -> Result<Response<RevokeUserRightResponse>, Status> {
        let (written_at, ()) = self
            .tenant_write(request, async |cx, tenant, r| {
                let user = UserId::parse("user_id", &r.user_id)?;
                let resource = ResourcePath::parse("resource", &r.resource)?;
                let right = cv::right_from_proto("right", r.right)?;
                let store = &self.store;
                Ok(store
                    .revoke_user_right(&cx, &tenant, &user, &resource, right)
                    .await?)
            })
            .await?;
        Ok(Response::new(RevokeUserRightResponse { written_at }))
    }

    async fn list_user_rights(
        &self,
        request: Request<ListUserRightsRequest>,
    ) -> Result<Response<ListUserRightsResponse>, Status> {
        let (_, tenant) = self.tenant_context(&request).await?;
        let r = request.get_ref();
        let user = UserId::parse("user_id", &r.user_id)?;
        let (rights, next_page_token) = self
            .list(
                (r.page_size, &r.page_token),
                &Listing::new("rights")
                    .field(tenant.as_str())
                    .field(user.as_str()),
                async |page| self.store.list_user_rights(&tenant, &user, &page).await,
                |(resource, right)| cv::user_right_to_proto(&tenant, &user, resource, *right),
            )
            .await?;
        Ok(Response::new(ListUserRightsResponse {
            rights,
            next_page_token,
        }))
    }

    async fn put_api_user(
        &self,
        request: Request<PutApiUserRequest>,
    ) -> Result<Response<PutApiUserResponse>, Status> {
        let (written_at, ()) = self
            .tenant_write(request, async |cx, tenant, r| {
                let user = UserId::parse("user_id", &r.user_id)?;
                let api_user = cv::api_user_from_proto(&r.scopes, r.as_user)?;
                let store = &self.store;
                Ok(store.put_api_user(&cx, &tenant, &user, &api_user).await?)
            })
            .await?;
        Ok(Response::new(PutApiUserResponse { written_at }))
    }

    async fn delete_api_user(
        &self,
        request: Request<DeleteApiUserRequest>,
    ) -> Result<Response<DeleteApiUserResponse>, Status> {
        let (written_at, ()) = self
            .tenant_write(request, async |cx, tenant, r| {
                let user = UserId::parse("user_id", &r.user_id)?;
                Ok(self.store.delete_api_user(&cx, &tenant, &user).await?)
            })
            .await?;
        Ok(Response::new(DeleteApiUserResponse { written_at }))
    }

    async fn list_api_users(
        &self,
        request: Request<ListApiUsersRequest>,
    ) -> Result<Response<ListApiUsersResponse>, Status> {
        let (_, tenant) = self.tenant_context(&request).await?;
        let r = request.get_ref();
        let (api_users, next_page_token) = self
            .list(
                (r.page_size, &r.page_token),
                &Listing::new("api_users").field(tenant.as_str()),
                async |page| self.store.list_api_users(&tenant, &page).await,
                |(user, api_user)| cv::api_user_to_proto(&tenant, user, api_user),
            )
            .await?;
        Ok(Response::new(ListApiUsersResponse {
            api_users,
            next_page_token,
        }))
    }

    // Apps, consent and the whitelist.

    async fn register_app(
        &self,
        request: Request<RegisterAppRequest>,
    ) -> Result<Response<RegisterAppResponse>, Status> {
        let (written_at, ()) = self
            .write(request, async |cx, r| {
                let app_id = AppId::parse("app_id", &r.app_id)?;
                let name = Name::parse("name", &r.name)?;
                let kind = cv::app_kind_from_proto("kind", r.kind)?;
                let manifest = cv::manifest_from_proto("manifest", r.manifest.as_ref())?;
                let store = &self.store;
                Ok(store
                    .register_app(&cx, &app_id, &name, kind, &manifest)
                    .await?)
            })
            .await?;
        Ok(Response::new(RegisterAppResponse {
            written_at,
            manifest_revision: 1,
        }))
    }

    async fn update_app_manifest(
        &self,
        request: Request<UpdateAppManifestRequest>,
    ) -> Result<Response<UpdateAppManifestResponse>, Status> {
        let (written_at, manifest_revision) = self
            .write(request, async |cx, r| {
                let app_id = AppId::parse("app_id", &r.app_id)?;
                let manifest = cv::manifest_from_proto("manifest", r.manifest.as_ref())?;
                Ok(self
                    .store
                    .update_app_manifest(&cx, &app_id, &manifest)
                    .await?)
            })
            .await?;
        Ok(Response::new(UpdateAppManifestResponse {
            written_at,
            manifest_revision,
        }))
    }

    async fn unregister_app(
        &self,
        request: Request<UnregisterAppRequest>,
    ) -> Result<Response<UnregisterAppResponse>, Status> {
        let (written_at, ()) = self
            .write(request, async |cx, r| {
                let app_id = AppId::parse("app_id", &r.app_id)?;
                Ok(self.store.unregister_app(&cx, &app_id).await?)
            })
            .await?;
        Ok(Response::new(UnregisterAppResponse { written_at }))
    }

    async fn list_apps(
        &self,
        request: Request<ListAppsRequest>,
    ) -> Result<Response<ListAppsResponse>, Status> {
        self.context(&request).await?;
        let r = request.get_ref();
        let (apps, next_page_token) = self
            .list(
                (r.page_size, &r.page_token),
                &Listing::new("apps"),
                async |page| self.store.list_apps(&page).await,
                cv::app_to_proto,
            )
            .await?;
        Ok(Response::new(ListAppsResponse {
            apps,
            next_page_token,
        }))
    }

    async fn approve_consent(
        &self,
        request: Request<ApproveConsentRequest>,
    ) -> Result<Response<ApproveConsentResponse>, Status> {
        let (written_at, consent) = self
            .tenant_write(request, async |cx, tenant, r| {
                let app_id = AppId::parse("app_id", &r.app_id)?;
                if r.manifest_revision < 1 {
                    let problem = "is required: name the manifest revision you reviewed (see ListApps or GetAppScopes)";
                    return Err(ValidationError::new("manifest_revision", problem).into());
                }
                let resolved =
                    cv::resolved_requests_from_proto("resolved_requests", &r.resolved_requests)?;
                let store = &self.store;
                let (revision, consent) = store
                    .approve_consent(&cx, &tenant, &app_id, r.manifest_revision, resolved)
                    .await?;
                Ok((revision, cv::consent_to_proto(&tenant, &app_id, &consent)))
            })
            .await?;
        Ok(Response::new(ApproveConsentResponse {
            written_at,
            consent: Some(consent),
        }))
    }

    async fn revoke_consent(
        &self,
        request: Request<RevokeConsentRequest>,
    ) -> Result<Response<RevokeConsentResponse>, Status> {
        let (written_at, ()) = self
            .tenant_write(request, async |cx, tenant, r| {
                let app_id = AppId::parse("app_id", &r.app_id)?;
                Ok(self.store.revoke_consent(&cx, &tenant, &app_id).await?)
            })
            .await?;
        Ok(Response::new(RevokeConsentResponse { written_at }))
    }

    async fn list_consents(
        &self,
        request: Request<ListConsentsRequest>,
    ) -> Result<Response<ListConsentsResponse>, Status> {
        let (_, tenant) = self.tenant_context(&request).await?;
        let r = request.get_ref();
        let (consents, next_page_token) = self
            .list(
                (r.page_size, &r.page_token),
                &Listing::new("consents").field(tenant.as_str()),
                async |page| self.store.list_consents(&tenant, &page).await,
                |(app, consent)| cv::consent_to_proto(&tenant, app, consent),
            )
            .await?;
        Ok(Response::new(ListConsentsResponse {
            consents,
            next_page_token,
        }))
    }

    async fn put_whitelist_entry(
        &self,
        request: Request<PutWhitelistEntryRequest>,
    ) -> Result<Response<PutWhitelistEntryResponse>, Status> {
        let (written_at, ()) = self
            .tenant_write(request, async |cx, tenant, r| {
                let app_id = AppId::parse("app_id", &r.app_id)?;
                let entry = cv::whitelist_entry_from_proto(&r.allowed_scopes, r.content_access)?;
                let store = &self.store;
                Ok(store
                    .put_whitelist_entry(&cx, &tenant, &app_id, &entry)
                    .await?)
            })
            .await?;
        Ok(Response::new(PutWhitelistEntryResponse { written_at }))
    }

    async fn delete_whitelist_entry(
        &self,
        request: Request<DeleteWhitelistEntryRequest>,
    ) -> Result<Response<DeleteWhitelistEntryResponse>, Status> {
        let (written_at, ()) = self
            .tenant_write(request, async |cx, tenant, r| {
                let app_id = AppId::parse("app_id", &r.app_id)?;
                Ok(self
                    .store
                    .delete_whitelist_entry(&cx, &tenant, &app_id)
                    .await?)
            })
            .await?;
        Ok(Response::new(DeleteWhitelistEntryResponse { written_at }))
    }

    async fn list_whitelist_entries(
        &self,
        request: Request<ListWhitelistEntriesRequest>,
    ) -> Result<Response<ListWhitelistEntriesResponse>, Status> {
        let (_, tenant) = self.tenant_context(&request).await?;
        let r = request.get_ref();
        let (entries, next_page_token) = self
            .list(
                (r.page_size, &r.page_token),
                &Listing::new("whitelist").field(tenant.as_str()),
                async |page| self.store.list_whitelist_entries(&tenant, &page).await,
                |(app, entry)| cv::whitelist_entry_to_proto(&tenant, app, entry),
            )
            .await?;
        Ok(Response::new(ListWhitelistEntriesResponse {
            entries,
            next_page_token,
        }))
    }

    // External permission groups, their permissions and grants.

    async fn create_permission_group(
        &self,
        request: Request<CreatePermissionGroupRequest>,
    ) -> Result<Response<CreatePermissionGroupResponse>, Status> {
        let (written_at, group) = self
            .tenant_write(request, async |cx, tenant, r| {
                let spec = cv::group_spec_from_proto(
                    &r.group_id,
                    &r.name,
                    &r.description,
                    &r.managers,
                    &r.grantors,
                    &r.visible_to,
                )?;
                let (revision, group) = self.store.create_group(&cx, &tenant, spec).await?;
                Ok((revision, cv::group_to_proto(&tenant, &group, &[])))
            })
            .await?;
        Ok(Response::new(CreatePermissionGroupResponse {
            written_at,
            group: Some(group),
        }))
    }

    async fn update_permission_group(
        &self,
        request: Request<UpdatePermissionGroupRequest>,
    ) -> Result<Response<UpdatePermissionGroupResponse>, Status> {
        let (written_at, group) = self
            .tenant_write(request, async |cx, tenant, r| {
                let spec = cv::group_spec_from_proto(
                    &r.group_id,
                    &r.name,
                    &r.description,
                    &r.managers,
                    &r.grantors,
                    &r.visible_to,
                )?;
                let (revision, g) = self.store.update_group(&cx, &tenant, spec).await?;
                Ok((
                    revision,
                    cv::group_to_proto(&tenant, &g.group, &g.permissions),
                ))
            })
            .await?;
        Ok(Response::new(UpdatePermissionGroupResponse {
            written_at,
            group: Some(group),
        }))
    }

    async fn delete_permission_group(
        &self,
        request: Request<DeletePermissionGroupRequest>,
    ) -> Result<Response<DeletePermissionGroupResponse>, Status> {
        let (written_at, ()) = self
            .tenant_write(request, async |cx, tenant, r| {
                let group = GroupId::parse("group_id", &r.group_id)?;
                Ok(self.store.delete_group(&cx, &tenant, &group).await?)
            })
            .await?;
        Ok(Response::new(DeletePermissionGroupResponse { written_at }))
    }

    async fn list_permission_groups(
        &self,
        request: Request<ListPermissionGroupsRequest>,
    ) -> Result<Response<ListPermissionGroupsResponse>, Status> {
        let (cx, tenant) = self.tenant_context(&request).await?;
        let r = request.get_ref();
        let viewer = viewer(&cx);
        let (groups, next_page_token) = self
            .list(
                (r.page_size, &r.page_token),
                &Listing::new("groups")
                    .field(tenant.as_str())
                    .field(&viewer.principal().to_string()),
                async |page| self.store.list_groups(&tenant, &viewer, &page).await,
                |g| cv::group_to_proto(&tenant, &g.group, &g.permissions),
            )
            .await?;
        Ok(Response::new(ListPermissionGroupsResponse {
            groups,
            next_page_token,
        }))
    }

    async fn create_external_permission(
        &self,
        request: Request<CreateExternalPermissionRequest>,
    ) -> Result<Response<CreateExternalPermissionResponse>, Status> {
        let (written_at, ()) = self
            .tenant_write(request, async |cx, tenant, r| {
                let permission = cv::external_permission_from_proto(&r)?;
                Ok(self
                    .store
                    .create_permission(&cx, &tenant, &permission)
                    .await?)
            })
            .await?;
        Ok(Response::new(CreateExternalPermissionResponse {
            written_at,
        }))
    }

    async fn delete_external_permission(
        &self,
        request: Request<DeleteExternalPermissionRequest>,
    ) -> Result<Response<DeleteExternalPermissionResponse>, Status> {
        let (written_at, ()) = self
            .tenant_write(request, async |cx, tenant, r| {
                let permission = PermissionId::parse("permission_id", &r.permission_id)?;
                Ok(self
                    .store
                    .delete_permission(&cx, &tenant, &permission)
                    .await?)
            })
            .await?;
        Ok(Response::new(DeleteExternalPermissionResponse {
            written_at,
        }))
    }

    async fn grant_external_permission(
        &self,
        request: Request<GrantExternalPermissionRequest>,
    ) -> Result<Response<GrantExternalPermissionResponse>, Status> {
        let (written_at, ()) = self
            .tenant_write(request, async |cx, tenant, r| {
                let user = UserId::parse("user_id", &r.user_id)?;
                let permission = PermissionId::parse("permission_id", &r.permission_id)?;
                let expires_at =
                    cv::optional_timestamp_from_proto("expires_at", r.expires_at.as_ref())?;
                let store = &self.store;
                Ok(store
                    .grant_external(&cx, &tenant, &user, &permission, expires_at)
                    .await?)
            })
            .await?;
        Ok(Response::new(GrantExternalPermissionResponse {
            written_at,
        }))
    }

    async fn revoke_external_permission(
        &self,
        request: Request<RevokeExternalPermissionRequest>,
    ) -> Result<Response<RevokeExternalPermissionResponse>, Status> {
        let (written_at, ()) = self
            .tenant_write(request, async |cx, tenant, r| {
                let user = UserId::parse("user_id", &r.user_id)?;
                let permission = PermissionId::parse("permission_id", &r.permission_id)?;
                let store = &self.store;
                Ok(store
                    .revoke_external(&cx, &tenant, &user, &permission)
                    .await?)
            })
            .await?;
        Ok(Response::new(RevokeExternalPermissionResponse {
            written_at,
        }))
    }

    // API clients and the audit log.

    async fn create_client(
        &self,
        request: Request<CreateClientRequest>,
    ) -> Result<Response<CreateClientResponse>, Status> {
        let (written_at, (client_id, key)) = self
            .write(request, async |cx, r| {
                let client_id = ClientId::parse("client_id", &r.client_id)?;
                let tenants = TenantBounds::parse("tenants", &r.tenants)?;
                let capabilities = cv::capabilities_from_proto("capabilities", &r.capabilities)?;
                let key = generate_key().map_err(|e| ServiceError::Internal(e.to_string()))?;
                let store = &self.store;
                let revision = store
                    .create_client(
                        Some(&cx),
                        &client_id,
                        &tenants,
                        capabilities,
                        &hash_key(&key),
                    )
                    .await?;
                Ok((revision, (client_id, key)))
            })
            .await?;
        Ok(Response::new(CreateClientResponse {
            written_at,
            client_id: client_id.to_string(),
            key,
        }))
    }

    async fn revoke_client(
        &self,
        request: Request<RevokeClientRequest>,
    ) -> Result<Response<RevokeClientResponse>, Status> {
        let (written_at, ()) = self
            .write(request, async |cx, r| {
                let client_id = ClientId::parse("client_id", &r.client_id)?;
                Ok(self.store.revoke_client(Some(&cx), &client_id).await?)
            })
            .await?;
        Ok(Response::new(RevokeClientResponse { written_at }))
    }

    async fn list_clients(
        &self,
        request: Request<ListClientsRequest>,
    ) -> Result<Response<ListClientsResponse>, Status> {
        let cx = self.context(&request).await?;
        cx.caller.require_all_tenants("listing clients")?;
        let r = request.get_ref();
        let (clients, next_page_token) = self
            .list(
                (r.page_size, &r.page_token),
                &Listing::new("clients"),
                async |page| self.store.list_clients(&page).await,
                cv::client_to_proto,
            )
            .await?;
        Ok(Response::new(ListClientsResponse {
            clients,
            next_page_token,
        }))
    }

    async fn list_audit_events(
        &self,
        request: Request<ListAuditEventsRequest>,
    ) -> Result<Response<ListAuditEventsResponse>, Status> {
        let cx = self.context(&request).await?;
        let r = request.get_ref();
        let tenant_id = TenantId::parse_optional("tenant_id", &r.tenant_id)?;
        if let Some(t) = &tenant_id {
            cx.caller.require_tenant(t)?;
        }
        let actor = match r.actor.as_str() {
            "" => None,
            actor => Some(Principal::parse("actor", actor)?),
        };
        let filter = AuditFilter {
            tenant_id,
            target: match r.target.as_str() {
                "" => None,
                target => Some(AuditTarget::parse("target", target)?),
            },
            actor,
            since: cv::optional_timestamp_from_proto("since", r.since.as_ref())?,
            visible_to: Some(cx.caller.tenants.clone()),
        };
        let since = filter.since.map(|t| t.as_micros().to_string());
        let query = cx.caller.tenants.to_strings().iter().fold(
            Listing::new("audit")
                .field(&r.tenant_id)
                .field(&r.target)
                .field(&r.actor)
                .optional(since.as_deref()),
            |q, t| q.field(t),
        );
        let (events, next_page_token) = self
            .list(
                (r.page_size, &r.page_token),
                &query,
                async |page| self.store.list_audit_events(&filter, &page).await,
                cv::audit_event_to_proto,
            )
            .await?;
        Ok(Response::new(ListAuditEventsResponse {
            events,
            next_page_token,
        }))
    }

    // Site-level app rights (DESIGN.md §8).

    async fn grant_app_right(
        &self,
        request: Request<GrantAppRightRequest>,
    ) -> Result<Response<GrantAppRightResponse>, Status> {
        let (written_at, ()) = self
            .tenant_write(request, async |cx, tenant, r| {
                let app_id = AppId::parse("app_id", &r.app_id)?;
                let resource = ResourcePath::parse("resource", &r.resource)?;
                let right = cv::right_from_proto("right", r.right)?;
                let store = &self.store;
                Ok(store
                    .grant_app_right(&cx, &tenant, &app_id, &resource, right)
                    .await?)
            })
            .await?;
        Ok(Response::new(GrantAppRightResponse { written_at }))
    }

    async fn revoke_app_right(
        &self,
        request: Request<RevokeAppRightRequest>,
    ) -> Result<Response<RevokeAppRightResponse>, Status> {
        let (written_at, ()) = self
            .tenant_write(request, async |cx, tenant, r| {
                let app_id = AppId::parse("app_id", &r.app_id)?;
                let resource = ResourcePath::parse("resource", &r.resource)?;
                let right = cv::right_from_proto("right", r.right)?;
                let store = &self.store;
                Ok(store
                    .revoke_app_right(&cx, &tenant, &app_id, &resource, right)
                    .await?)
            })
            .await?;
        Ok(Response::new(RevokeAppRightResponse { written_at }))
    }
}
