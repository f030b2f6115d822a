//! The floor that `scripts/bench` measures consentry against: a bare tonic server answering
//! consentry's `PermissionService` RPCs and Envoy's ext_authz `Check` with fixed answers, and
//! nothing else (no authentication,
//! cache, engine, metrics, logs or layers). It uses the same tonic, the same generated code, the
//! same runtime, tonic's default server settings and the same socket settings
//! (`consentry::startup::incoming`) as `consentry serve`, so the difference between
//! the two is what consentry adds to a call.
//!
//! Usage: `cargo run --release --example bare_tonic [ADDR]` (default `127.0.0.1:0`); it prints
//! `listening on ADDR` on stderr.

use consentry::proto::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use consentry::proto::envoy::config::core::v3::{HeaderValue, HeaderValueOption};
use consentry::proto::envoy::service::auth::v3::authorization_server::{
    Authorization, AuthorizationServer,
};
use consentry::proto::envoy::service::auth::v3::check_response::HttpResponse;
use consentry::proto::envoy::service::auth::v3::{CheckRequest, CheckResponse, OkHttpResponse};
use consentry::proto::permission_service_server::{PermissionService, PermissionServiceServer};
use consentry::proto::*;
use tonic::{Request, Response, Status};

/// Answers every query at once with a fixed, successful answer.
struct Bare;

fn allowed(resource: String) -> CheckAccessResponse {
    CheckAccessResponse {
        allowed: true,
        reason: Reason::Allowed.into(),
        message: resource,
        checked_at: "r1".to_owned(),
        trace: Vec::new(),
    }
}

#[tonic::async_trait]
impl PermissionService for Bare {
    async fn check_access(
        &self,
        request: Request<CheckAccessRequest>,
    ) -> Result<Response<CheckAccessResponse>, Status> {
        Ok(Response::new(allowed(request.into_inner().resource)))
    }

    async fn check_access_batch(
        &self,
        request: Request<CheckAccessBatchRequest>,
    ) -> Result<Response<CheckAccessBatchResponse>, Status> {
        let results = request
            .into_inner()
            .items
            .into_iter()
            .map(|item| allowed(item.resource))
            .collect();
        Ok(Response::new(CheckAccessBatchResponse {
            results,
            checked_at: "r1".to_owned(),
        }))
    }

    async fn list_external_permissions(
        &self,
        _request: Request<ListExternalPermissionsRequest>,
    ) -> Result<Response<ListExternalPermissionsResponse>, Status> {
        Ok(Response::new(ListExternalPermissionsResponse {
            checked_at: "r1".to_owned(),
            ..Default::default()
        }))
    }

    async fn check_external_permission(
        &self,
        _request: Request<CheckExternalPermissionRequest>,
    ) -> Result<Response<CheckExternalPermissionResponse>, Status> {
        Ok(Response::new(CheckExternalPermissionResponse {
            granted: true,
            expires_at: None,
            checked_at: "r1".to_owned(),
        }))
    }

    async fn get_app_scopes(
        &self,
        request: Request<GetAppScopesRequest>,
    ) -> Result<Response<GetAppScopesResponse>, Status> {
        Ok(Response::new(GetAppScopesResponse {
            effective_scopes: vec![request.into_inner().app_id],
            checked_at: "r1".to_owned(),
            ..Default::default()
        }))
    }

    async fn get_consent_prompt(
        &self,
        request: Request<GetConsentPromptRequest>,
    ) -> Result<Response<GetConsentPromptResponse>, Status> {
        Ok(Response::new(GetConsentPromptResponse {
            app_id: request.into_inner().app_id,
            checked_at: "r1".to_owned(),
            ..Default::default()
        }))
    }

    async fn issue_context_token(
        &self,
        _request: Request<IssueContextTokenRequest>,
    ) -> Result<Response<IssueContextTokenResponse>, Status> {
        Ok(Response::new(IssueContextTokenResponse {
            checked_at: "r1".to_owned(),
            ..Default::default()
        }))
    }

    async fn get_signing_keys(
        &self,
        _request: Request<GetSigningKeysRequest>,
    ) -> Result<Response<GetSigningKeysResponse>, Status> {
        Ok(Response::new(GetSigningKeysResponse {
            jwks: r#"{"keys":[]}"#.to_owned(),
        }))
    }
}

/// Envoy's `Check`, answered with a fixed allow that sets one header, as consentry's allow does.
#[tonic::async_trait]
impl Authorization for Bare {
    async fn check(
        &self,
        _request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        let revision = HeaderValueOption {
            header: Some(HeaderValue {
                key: "x-consentry-revision".to_owned(),
                value: "r1".to_owned(),
                raw_value: Vec::new(),
            }),
            append: None,
            append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        };
        Ok(Response::new(CheckResponse {
            status: Some(consentry::proto::google::rpc::Status {
                code: 0,
                message: String::new(),
            }),
            http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
                headers: vec![revision],
                headers_to_remove: Vec::new(),
            })),
            dynamic_metadata: None,
        }))
    }
}

/// mimalloc: a request allocates and frees small blocks on whichever worker thread runs it, and
/// glibc's per-thread arenas then contend on their locks (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("listening on {}", listener.local_addr()?);
    let max = consentry::config::DEFAULT_MAX_MESSAGE_BYTES;
    tonic::transport::Server::builder()
        .add_service(
            PermissionServiceServer::new(Bare)
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        )
        .add_service(
            AuthorizationServer::new(Bare)
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        )
        .serve_with_incoming(consentry::startup::incoming(listener))
        .await?;
    Ok(())
}
