//! The AdminService's handlers, grouped by area: tenants and users, apps and consent, external
//! permissions, clients and audit, site-level app rights. Each hands its request to
//! [`AdminApi::write`] or [`AdminApi::list`], which parse it into its command
//! (`convert::Parse`); what is left here is the store call and the answer.

use tonic::{Request, Response, Status};

use super::AdminApi;
use crate::convert::{self as cv, Approval, ExternalGrant, NewApp, NewClient};
use crate::proto::admin_service_server::AdminService;
use crate::proto::*;
use crate::service::auth::{generate_key, hash_key};
use crate::service::status::ServiceError;

#[tonic::async_trait]
impl AdminService for AdminApi {
    // Tenants, users and their rights.

    async fn put_tenant(
        &self,
        request: Request<PutTenantRequest>,
    ) -> Result<Response<PutTenantResponse>, Status> {
        let (written_at, created) = self
            .write(request, async |cx, tenant| {
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
        let (tenants, next_page_token) = self
            .list(
                request,
                async |bounds, page| self.store.list_tenants(bounds, page).await,
                |_, tenant| cv::tenant_to_proto(tenant),
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
            .write(request, async |cx, (tenant, user, roles)| {
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
            .write(request, async |cx, (tenant, user)| {
                Ok(self.store.delete_user(&cx, &tenant, &user).await?)
            })
            .await?;
        Ok(Response::new(DeleteUserResponse { written_at }))
    }

    async fn list_users(
        &self,
        request: Request<ListUsersRequest>,
    ) -> Result<Response<ListUsersResponse>, Status> {
        let (users, next_page_token) = self
            .list(
                request,
                async |tenant, page| self.store.list_users(tenant, page).await,
                |tenant, (user, roles)| cv::tenant_user_to_proto(tenant, user, roles),
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
            .write(request, async |cx, (tenant, user, resource, right)| {
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
            .write(request, async |cx, (tenant, user, resource, right)| {
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
        let (rights, next_page_token) = self
            .list(
                request,
                async |(tenant, user), page| self.store.list_user_rights(tenant, user, page).await,
                |(tenant, user), (resource, right)| {
                    cv::user_right_to_proto(tenant, user, resource, *right)
                },
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
            .write(request, async |cx, (tenant, user, api_user)| {
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
            .write(request, async |cx, (tenant, user)| {
                Ok(self.store.delete_api_user(&cx, &tenant, &user).await?)
            })
            .await?;
        Ok(Response::new(DeleteApiUserResponse { written_at }))
    }

    async fn list_api_users(
        &self,
        request: Request<ListApiUsersRequest>,
    ) -> Result<Response<ListApiUsersResponse>, Status> {
        let (api_users, next_page_token) = self
            .list(
                request,
                async |tenant, page| self.store.list_api_users(tenant, page).await,
                |tenant, (user, api_user)| cv::api_user_to_proto(tenant, user, api_user),
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
            .write(request, async |cx, app: NewApp| {
                let store = &self.store;
                Ok(store
                    .register_app(&cx, &app.app_id, &app.name, app.kind, &app.manifest)
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
            .write(request, async |cx, (app_id, manifest)| {
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
            .write(request, async |cx, app_id| {
                Ok(self.store.unregister_app(&cx, &app_id).await?)
            })
            .await?;
        Ok(Response::new(UnregisterAppResponse { written_at }))
    }

    async fn list_apps(
        &self,
        request: Request<ListAppsRequest>,
    ) -> Result<Response<ListAppsResponse>, Status> {
        let (apps, next_page_token) = self
            .list(
                request,
                async |(), page| self.store.list_apps(page).await,
                |(), app| cv::app_to_proto(app),
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
            .write(request, async |cx, a: Approval| {
                let store = &self.store;
                let (revision, consent) = store
                    .approve_consent(&cx, &a.tenant, &a.app_id, a.manifest_revision, a.resolved)
                    .await?;
                Ok((
                    revision,
                    cv::consent_to_proto(&a.tenant, &a.app_id, &consent),
                ))
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
            .write(request, async |cx, (tenant, app_id)| {
                Ok(self.store.revoke_consent(&cx, &tenant, &app_id).await?)
            })
            .await?;
        Ok(Response::new(RevokeConsentResponse { written_at }))
    }

    async fn list_consents(
        &self,
        request: Request<ListConsentsRequest>,
    ) -> Result<Response<ListConsentsResponse>, Status> {
        let (consents, next_page_token) = self
            .list(
                request,
                async |tenant, page| self.store.list_consents(tenant, page).await,
                |tenant, (app, consent)| cv::consent_to_proto(tenant, app, consent),
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
            .write(request, async |cx, (tenant, app_id, entry)| {
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
            .write(request, async |cx, (tenant, app_id)| {
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
        let (entries, next_page_token) = self
            .list(
                request,
                async |tenant, page| self.store.list_whitelist_entries(tenant, page).await,
                |tenant, (app, entry)| cv::whitelist_entry_to_proto(tenant, app, entry),
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
            .write(request, async |cx, (tenant, spec)| {
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
            .write(request, async |cx, (tenant, spec)| {
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
            .write(request, async |cx, (tenant, group)| {
                Ok(self.store.delete_group(&cx, &tenant, &group).await?)
            })
            .await?;
        Ok(Response::new(DeletePermissionGroupResponse { written_at }))
    }

    async fn list_permission_groups(
        &self,
        request: Request<ListPermissionGroupsRequest>,
    ) -> Result<Response<ListPermissionGroupsResponse>, Status> {
        let (groups, next_page_token) = self
            .list(
                request,
                async |(tenant, viewer), page| self.store.list_groups(tenant, viewer, page).await,
                |(tenant, _), g| cv::group_to_proto(tenant, &g.group, &g.permissions),
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
            .write(request, async |cx, (tenant, permission)| {
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
            .write(request, async |cx, (tenant, permission)| {
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
            .write(request, async |cx, g: ExternalGrant| {
                let store = &self.store;
                Ok(store
                    .grant_external(&cx, &g.tenant, &g.user, &g.permission, g.expires_at)
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
            .write(request, async |cx, (tenant, user, permission)| {
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
            .write(request, async |cx, c: NewClient| {
                let key = generate_key().map_err(|cause| ServiceError::Internal {
                    what: "making a key",
                    cause,
                })?;
                let store = &self.store;
                let revision = store
                    .create_client(
                        Some(&cx),
                        &c.client_id,
                        &c.tenants,
                        c.capabilities,
                        &hash_key(&key),
                    )
                    .await?;
                Ok((revision, (c.client_id, key)))
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
            .write(request, async |cx, client_id| {
                Ok(self.store.revoke_client(Some(&cx), &client_id).await?)
            })
            .await?;
        Ok(Response::new(RevokeClientResponse { written_at }))
    }

    async fn list_clients(
        &self,
        request: Request<ListClientsRequest>,
    ) -> Result<Response<ListClientsResponse>, Status> {
        let (clients, next_page_token) = self
            .list(
                request,
                async |(), page| self.store.list_clients(page).await,
                |(), client| cv::client_to_proto(client),
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
        let (events, next_page_token) = self
            .list(
                request,
                async |filter, page| self.store.list_audit_events(filter, page).await,
                |_, event| cv::audit_event_to_proto(event),
            )
            .await?;
        Ok(Response::new(ListAuditEventsResponse {
            events,
            next_page_token,
        }))
    }

    // Site-level app rights (docs/rules.md §8).

    async fn grant_app_right(
        &self,
        request: Request<GrantAppRightRequest>,
    ) -> Result<Response<GrantAppRightResponse>, Status> {
        let (written_at, ()) = self
            .write(request, async |cx, (tenant, app_id, resource, right)| {
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
            .write(request, async |cx, (tenant, app_id, resource, right)| {
                let store = &self.store;
                Ok(store
                    .revoke_app_right(&cx, &tenant, &app_id, &resource, right)
                    .await?)
            })
            .await?;
        Ok(Response::new(RevokeAppRightResponse { written_at }))
    }
}
