//! Context tokens end to end (docs/rules.md §8): IssueContextToken and GetSigningKeys over real
//! servers on both backends, each token checked by a verifier written here from the RFCs (raw
//! Ed25519 over `header.payload` with the JWK's `x`, claims as plain JSON), not the crate's; key
//! rotation by rewriting the key file; and a key file that cannot be used stopping `serve` at
//! start. `consentry token verify` and `keygen` as processes are in `token_access.rs`.

use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use consentry::proto::permission_service_client::PermissionServiceClient;
use consentry::proto::*;
use serde_json::Value;
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::support::calls::{Cases, Who, boot, ok};
use crate::support::db::{TestDb, backend_tests};
use crate::support::dir::TempDir;
use crate::support::fixtures::*;
use crate::support::server::{TestServer, config, eventually};
use crate::support::world::{Admin, new_client, put_user, register};

backend_tests!(
    an_allowed_check_issues_a_token_that_verifies_independently,
    acting_for_another_user_and_app_only_tokens_say_so,
    a_refused_check_answers_its_reason_and_no_token,
    bad_input_is_invalid_argument_naming_the_field,
    without_a_key_file_tokens_are_a_failed_precondition,
    a_rotated_key_file_is_published_and_signs_new_tokens,
    an_api_users_token_carries_only_their_scopes,
);

pub(crate) const AUDIENCE: &str = "https://docs.example";
pub(crate) const ISSUER: &str = "https://consentry.test";

// ---------------------------------------------------------------------------------------------
// The independent verifier.

/// The header and claims of `token`, after checking its Ed25519 signature over `header.payload`
/// with the key of `jwks` its header names (RFC 7515 §5.2, RFC 8037 §3.1).
pub(crate) fn verify_independently(token: &str, jwks: &str) -> (Value, Value) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a compact JWS: {token}");
    let json = |part: &str| -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    };
    let header = json(parts[0]);
    let jwks: Value = serde_json::from_str(jwks).unwrap();
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .unwrap_or_else(|| panic!("no key {} in {jwks}", header["kid"]));
    assert_eq!(
        (&key["kty"], &key["crv"]),
        (&"OKP".into(), &"Ed25519".into())
    );
    let x: [u8; 32] = URL_SAFE_NO_PAD
        .decode(key["x"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let public = ed25519_dalek::VerifyingKey::from_bytes(&x).unwrap();
    let signature =
        ed25519_dalek::Signature::from_slice(&URL_SAFE_NO_PAD.decode(parts[2]).unwrap()).unwrap();
    public
        .verify_strict(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
        .expect("the signature verifies with the published key");
    (header, json(parts[1]))
}

/// The offline rule over a token's `rights`, written from docs/rules.md §8: the highest level listed
/// at `path` or an ancestor.
fn level_at(claims: &Value, path: &str) -> Option<usize> {
    const LEVELS: [&str; 4] = ["READ", "WRITE", "MANAGE", "FULL_CONTROL"];
    let covers = |p: &str| p == "/" || p == path || path.starts_with(&format!("{p}/"));
    claims["rights"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| covers(r["path"].as_str().unwrap()))
        .map(|r| {
            LEVELS
                .iter()
                .position(|l| *l == r["level"].as_str().unwrap())
                .unwrap()
        })
        .max()
}

fn rights(claims: &Value) -> Vec<(String, String)> {
    claims["rights"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["path"].as_str().unwrap().to_owned(),
                r["level"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The world: tenant acme (whitelisting on), alice its administrator, bob a delegate, dave with
// READ under /hr and FULL_CONTROL under /hr/team; crm approved for WRITE at /hr and MANAGE at
// /hr/team/docs, acting for managed users; reports approved app-only for READ at /; notes
// registered, never approved.

pub(crate) struct World {
    pub(crate) server: TestServer,
    pub(crate) admin: Admin,
    pub(crate) perm: PermissionServiceClient<Channel>,
}

pub(crate) fn key_config(
    db: &TestDb,
    key_file: Option<&std::path::Path>,
) -> consentry::config::ServeConfig {
    let mut config = config(db);
    config.signing_key_file = key_file.map(ToOwned::to_owned);
    config.token_issuer = ISSUER.to_owned();
    config.signing_key_reload_interval = Duration::from_millis(50);
    config
}

pub(crate) async fn world(db: &TestDb, key_file: Option<&std::path::Path>) -> World {
    world_on(key_config(db, key_file)).await
}

/// The world on a server started with `config`.
pub(crate) async fn world_on(config: consentry::config::ServeConfig) -> World {
    let server = TestServer::start_with(config).await;
    let mut admin = server.admin().await;
    let perm = server.permission().await;
    let alice = Who::boot().user("alice");
    ok(admin
        .put_tenant(Who::boot().r(tenant_req("acme", "production", false)))
        .await);
    put_user(
        &mut admin,
        &Who::boot(),
        "acme",
        "alice",
        &[Role::GeneralAdmin],
    )
    .await;
    put_user(&mut admin, &alice, "acme", "bob", &[Role::Delegate]).await;
    put_user(&mut admin, &alice, "acme", "dave", &[]).await;
    for (resource, right) in [("/hr", Right::Read), ("/hr/team", Right::FullControl)] {
        ok(admin
            .grant_user_right(boot(right_req("acme", "dave", resource, right), None))
            .await);
    }
    ok(admin
        .put_tenant(alice.r(tenant_req("acme", "production", true)))
        .await);
    let crm = manifest(
        &["documents:read", "documents:write"],
        &[
            (ScopeLevel::SiteCollection, Right::Write),
            (ScopeLevel::List, Right::Manage),
        ],
    );
    let revision = register(&mut admin, "crm", AppKind::Standard, crm).await;
    let resolved_crm = vec![
        resolved(ScopeLevel::SiteCollection, Right::Write, "/hr"),
        resolved(ScopeLevel::List, Right::Manage, "/hr/team/docs"),
    ];
    ok(admin
        .approve_consent(alice.r(approve_req("acme", "crm", revision, resolved_crm)))
        .await);
    let reports = Manifest {
        allow_app_only: true,
        ..manifest(&["reports:read"], &[(ScopeLevel::Tenancy, Right::Read)])
    };
    let revision = register(&mut admin, "reports", AppKind::Standard, reports).await;
    let resolved_reports = vec![resolved(ScopeLevel::Tenancy, Right::Read, "/")];
    ok(admin
        .approve_consent(alice.r(approve_req("acme", "reports", revision, resolved_reports)))
        .await);
    register(
        &mut admin,
        "notes",
        AppKind::Standard,
        manifest(&["notes"], &[]),
    )
    .await;
    let on_behalf = PutWhitelistEntryRequest {
        content_access: ContentAccess::OnBehalfOfManagedUsers.into(),
        ..whitelist_req("acme", "crm", &[])
    };
    ok(admin.put_whitelist_entry(alice.r(on_behalf)).await);
    for app in ["reports", "notes"] {
        ok(admin
            .put_whitelist_entry(alice.r(whitelist_req("acme", app, &[])))
            .await);
    }
    World {
        server,
        admin,
        perm,
    }
}

pub(crate) fn token_req(app: &str, user: &str, resource: &str) -> IssueContextTokenRequest {
    IssueContextTokenRequest {
        tenant_id: "acme".into(),
        app_id: app.into(),
        user_id: user.into(),
        resource: resource.into(),
        audience: AUDIENCE.into(),
        ..IssueContextTokenRequest::default()
    }
}

impl World {
    pub(crate) async fn issue_as(
        &self,
        who: &Who,
        r: IssueContextTokenRequest,
    ) -> Result<IssueContextTokenResponse, Status> {
        self.perm
            .clone()
            .issue_context_token(who.r(r))
            .await
            .map(tonic::Response::into_inner)
    }

    pub(crate) async fn issue(&self, r: IssueContextTokenRequest) -> IssueContextTokenResponse {
        ok(self
            .perm
            .clone()
            .issue_context_token(Who::boot().r(r))
            .await)
    }

    pub(crate) async fn jwks(&self) -> String {
        ok(self
            .perm
            .clone()
            .get_signing_keys(Who::boot().r(GetSigningKeysRequest {}))
            .await)
        .jwks
    }

    async fn allowed(&self, user: &str, permission: &str, resource: &str) -> bool {
        let q = CheckAccessRequest {
            tenant_id: "acme".into(),
            app_id: "crm".into(),
            user_id: user.into(),
            permission: permission.into(),
            resource: resource.into(),
            ..CheckAccessRequest::default()
        };
        ok(self.perm.clone().check_access(Who::boot().r(q)).await).allowed
    }
}

/// A key file of its own holding `pems` in order.
pub(crate) fn key_file(dir: &TempDir, pems: &[&str]) -> std::path::PathBuf {
    dir.write("signing.pem", &pems.concat())
}

pub(crate) fn new_key() -> String {
    consentry::token::generate_pem().unwrap()
}

// ---------------------------------------------------------------------------------------------
// The server.

async fn an_allowed_check_issues_a_token_that_verifies_independently(db: &TestDb) {
    let dir = TempDir::new("tokens");
    let w = world(db, Some(&key_file(&dir, &[&new_key()]))).await;
    let reply = w
        .issue(IssueContextTokenRequest {
            ttl_seconds: 120,
            ..token_req("crm", "dave", "/hr")
        })
        .await;
    assert!(reply.issued, "{reply:?}");
    assert_eq!(reply.reason(), Reason::Allowed);
    let (header, claims) = verify_independently(&reply.token, &w.jwks().await);
    assert_eq!(
        (&header["alg"], &header["typ"]),
        (&"EdDSA".into(), &"JWT".into())
    );
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["aud"], AUDIENCE);
    assert_eq!(claims["tid"], "acme");
    assert_eq!(claims["app"], "crm");
    assert_eq!(claims["sub"], "dave");
    assert!(claims.get("act").is_none(), "{claims}");
    assert_eq!(claims["pol"], "USER_AND_APP");
    assert_eq!(claims["rev"], reply.checked_at.as_str());
    assert_eq!(
        claims["scp"],
        serde_json::json!(["documents:read", "documents:write"])
    );
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert_eq!(exp - iat, 120);
    assert!((iat - now_secs()).abs() < 60, "iat {iat} is now");
    assert_eq!(reply.expires_at.unwrap().seconds, exp);
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
    // The lower of the app's and dave's inherited levels at every path either has a grant on.
    let expected = [
        ("/hr", "READ"),
        ("/hr/team", "WRITE"),
        ("/hr/team/docs", "MANAGE"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(p, l)| ((*p).to_owned(), (*l).to_owned()))
        .collect();
    assert_eq!(rights(&claims), expected);
    // Offline, the rights give the server's own answers under the resource.
    let mut cases = Cases::new("the token's rights against CheckAccess");
    for path in [
        "/hr",
        "/hr/x",
        "/hr/team",
        "/hr/team/docs",
        "/hr/team/docs/a/b",
    ] {
        for (level, name) in ["READ", "WRITE", "MANAGE", "FULL_CONTROL"]
            .iter()
            .enumerate()
        {
            let offline = level_at(&claims, path).is_some_and(|held| held >= level);
            let online = w.allowed("dave", name, path).await;
            cases.expect(
                format!("{name} at {path}"),
                offline == online,
                format!("offline {offline}, CheckAccess {online}"),
            );
        }
    }
    cases.finish();
    // The default lifetime is 300 s; a second token has its own jti.
    let default = w.issue(token_req("crm", "dave", "/hr")).await;
    let (_, again) = verify_independently(&default.token, &w.jwks().await);
    assert_eq!(
        again["exp"].as_i64().unwrap() - again["iat"].as_i64().unwrap(),
        300
    );
    assert_ne!(again["jti"], claims["jti"]);
    w.server.stop().await;
}

async fn acting_for_another_user_and_app_only_tokens_say_so(db: &TestDb) {
    let dir = TempDir::new("tokens");
    let w = world(db, Some(&key_file(&dir, &[&new_key()]))).await;
    let jwks = w.jwks().await;
    let on_behalf = w
        .issue(IssueContextTokenRequest {
            on_behalf_of: "dave".into(),
            ..token_req("crm", "bob", "/hr/team")
        })
        .await;
    assert!(on_behalf.issued, "{on_behalf:?}");
    let (_, claims) = verify_independently(&on_behalf.token, &jwks);
    assert_eq!(claims["sub"], "dave", "dave's rights count");
    assert_eq!(claims["act"], serde_json::json!({"sub": "bob"}));
    assert_eq!(
        level_at(&claims, "/hr/team/x"),
        Some(1),
        "WRITE: the app's, below dave's"
    );

    let app_only = w.issue(token_req("reports", "", "/")).await;
    assert!(app_only.issued, "{app_only:?}");
    let (_, claims) = verify_independently(&app_only.token, &jwks);
    assert!(
        claims.get("sub").is_none() && claims.get("act").is_none(),
        "{claims}"
    );
    assert_eq!(claims["pol"], "APP_ONLY");
    assert_eq!(claims["scp"], serde_json::json!(["reports:read"]));
    assert_eq!(rights(&claims), [("/".to_owned(), "READ".to_owned())]);
    w.server.stop().await;
}

async fn a_refused_check_answers_its_reason_and_no_token(db: &TestDb) {
    let dir = TempDir::new("tokens");
    let w = world(db, Some(&key_file(&dir, &[&new_key()]))).await;
    let cases = [
        (token_req("ghost", "dave", "/"), Reason::UnknownApp, "ghost"),
        (token_req("notes", "dave", "/"), Reason::NoConsent, "notes"),
        (token_req("crm", "", "/"), Reason::UserRequired, "app-only"),
        (
            IssueContextTokenRequest {
                on_behalf_of: "bob".into(),
                ..token_req("crm", "dave", "/")
            },
            Reason::ImpersonationNotAllowed,
            "DELEGATE",
        ),
        (
            IssueContextTokenRequest {
                tenant_id: "nowhere".into(),
                ..token_req("crm", "dave", "/")
            },
            Reason::UnknownTenant,
            "nowhere",
        ),
    ];
    for (request, reason, needle) in cases {
        let what = format!("{request:?}");
        let reply = w.issue(request).await;
        assert!(!reply.issued, "{what}: {reply:?}");
        assert_eq!(reply.reason(), reason, "{what}");
        assert!(reply.message.contains(needle), "{what}: {}", reply.message);
        assert!(
            reply.token.is_empty() && reply.expires_at.is_none(),
            "{what}"
        );
        assert!(!reply.checked_at.is_empty());
    }
    w.server.stop().await;
}

async fn bad_input_is_invalid_argument_naming_the_field(db: &TestDb) {
    let dir = TempDir::new("tokens");
    let mut w = world(db, Some(&key_file(&dir, &[&new_key()]))).await;
    let base = || token_req("crm", "dave", "/hr");
    let mut cases = Cases::new("IssueContextToken validation");
    let invalid: Vec<(&str, IssueContextTokenRequest)> = vec![
        (
            "tenant_id",
            IssueContextTokenRequest {
                tenant_id: "a b".into(),
                ..base()
            },
        ),
        (
            "app_id",
            IssueContextTokenRequest {
                app_id: String::new(),
                ..base()
            },
        ),
        (
            "user_id",
            IssueContextTokenRequest {
                user_id: "da/ve".into(),
                ..base()
            },
        ),
        (
            "on_behalf_of",
            IssueContextTokenRequest {
                on_behalf_of: "x y".into(),
                ..base()
            },
        ),
        (
            "resource",
            IssueContextTokenRequest {
                resource: "hr".into(),
                ..base()
            },
        ),
        (
            "resource",
            IssueContextTokenRequest {
                resource: "/hr/../x".into(),
                ..base()
            },
        ),
        (
            "audience",
            IssueContextTokenRequest {
                audience: String::new(),
                ..base()
            },
        ),
        (
            "audience",
            IssueContextTokenRequest {
                audience: "a".repeat(257),
                ..base()
            },
        ),
        (
            "audience",
            IssueContextTokenRequest {
                audience: "tab\there".into(),
                ..base()
            },
        ),
        (
            "ttl_seconds",
            IssueContextTokenRequest {
                ttl_seconds: -1,
                ..base()
            },
        ),
        (
            "ttl_seconds",
            IssueContextTokenRequest {
                ttl_seconds: 3601,
                ..base()
            },
        ),
        (
            "consistency",
            IssueContextTokenRequest {
                consistency: Some(Consistency {
                    requirement: Some(consistency::Requirement::AtLeastAsFresh("junk".into())),
                }),
                ..base()
            },
        ),
    ];
    for (field, request) in invalid {
        let result = w.issue_as(&Who::boot(), request).await;
        cases.check(field, result, Code::InvalidArgument, field);
    }
    for (field, request) in [
        (
            "ttl 1",
            IssueContextTokenRequest {
                ttl_seconds: 1,
                ..base()
            },
        ),
        (
            "ttl 3600",
            IssueContextTokenRequest {
                ttl_seconds: 3600,
                ..base()
            },
        ),
        (
            "audience of 256",
            IssueContextTokenRequest {
                audience: "a".repeat(256),
                ..base()
            },
        ),
    ] {
        let result = w.issue_as(&Who::boot(), request).await;
        cases.expect(
            field,
            result.as_ref().is_ok_and(|r| r.issued),
            format!("{result:?}"),
        );
    }
    // Outside the caller's tenant bounds: refused before anything is validated or read.
    let other = new_client(
        &mut w.admin,
        &Who::boot(),
        "other-svc",
        &["globex"],
        &[Capability::Query],
    )
    .await;
    let outside = w.issue_as(&Who::key(&other), base()).await;
    cases.check(
        "a client bound to another tenant",
        outside,
        Code::PermissionDenied,
        "acme",
    );
    let outside_bad = IssueContextTokenRequest {
        ttl_seconds: -5,
        ..base()
    };
    let outside_bad = w.issue_as(&Who::key(&other), outside_bad).await;
    cases.check(
        "bounds before validation",
        outside_bad,
        Code::PermissionDenied,
        "acme",
    );
    let admin_only = new_client(
        &mut w.admin,
        &Who::boot(),
        "admin-svc",
        &["acme"],
        &[Capability::Admin],
    )
    .await;
    let no_query = w.issue_as(&Who::key(&admin_only), base()).await;
    cases.check(
        "without the query capability",
        no_query,
        Code::PermissionDenied,
        "query",
    );
    cases.finish();
    w.server.stop().await;
}

async fn without_a_key_file_tokens_are_a_failed_precondition(db: &TestDb) {
    let w = world(db, None).await;
    let result = w
        .issue_as(&Who::boot(), token_req("crm", "dave", "/hr"))
        .await;
    crate::support::calls::fails(result, Code::FailedPrecondition, "--signing-key-file");
    // Validation still comes first.
    let bad = IssueContextTokenRequest {
        audience: String::new(),
        ..token_req("crm", "dave", "/")
    };
    crate::support::calls::fails(
        w.issue_as(&Who::boot(), bad).await,
        Code::InvalidArgument,
        "audience",
    );
    let jwks: Value = serde_json::from_str(&w.jwks().await).unwrap();
    assert_eq!(jwks, serde_json::json!({"keys": []}));
    w.server.stop().await;
}

async fn a_rotated_key_file_is_published_and_signs_new_tokens(db: &TestDb) {
    let dir = TempDir::new("tokens");
    let (first, second) = (new_key(), new_key());
    let kid = |pem: &str| {
        consentry::token::SigningKeys::parse(pem.as_bytes())
            .unwrap()
            .signing_kid()
            .to_owned()
    };
    let path = key_file(&dir, &[&first]);
    let w = world(db, Some(&path)).await;
    let before = w.issue(token_req("crm", "dave", "/hr")).await;
    let (header, _) = verify_independently(&before.token, &w.jwks().await);
    assert_eq!(header["kid"], kid(&first).as_str());

    // The new key first, the old one kept until every token it signed has expired.
    key_file(&dir, &[&second, &first]);
    let kids = |jwks: &str| -> Vec<String> {
        let jwks: Value = serde_json::from_str(jwks).unwrap();
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    };
    let both = vec![kid(&second), kid(&first)];
    let perm = w.perm.clone();
    eventually(Duration::from_secs(10), || {
        let (mut perm, both) = (perm.clone(), both.clone());
        async move {
            let jwks = ok(perm
                .get_signing_keys(Who::boot().r(GetSigningKeysRequest {}))
                .await)
            .jwks;
            kids(&jwks) == both
        }
    })
    .await;
    let jwks = w.jwks().await;
    verify_independently(&before.token, &jwks);
    let after = w.issue(token_req("crm", "dave", "/hr")).await;
    let (header, _) = verify_independently(&after.token, &jwks);
    assert_eq!(header["kid"], kid(&second).as_str());
    w.server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// The binary.

pub(crate) fn consentry(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_consentry"))
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("CONSENTRY_SIGNING_KEY_FILE")
        .output()
        .unwrap()
}

#[test]
fn serve_refuses_a_key_file_it_cannot_use() {
    let dir = TempDir::new("tokens-config");
    let not_pem = dir.write("not.pem", "hello");
    let cert = rcgen::generate_simple_self_signed(vec!["x".into()]).unwrap();
    let not_ed25519 = dir.write("ec.pem", &cert.signing_key.serialize_pem());
    let missing = dir.0.join("missing.pem");
    for file in [&missing, &not_pem, &not_ed25519] {
        let db = format!("sqlite://{}", dir.0.join("unused.db").display());
        let out = consentry(&[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            &db,
            "--signing-key-file",
            file.to_str().unwrap(),
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{file:?}: {stderr}");
        assert!(stderr.contains("--signing-key-file"), "{file:?}: {stderr}");
        assert!(!stderr.contains("listening"), "{stderr}");
    }
}

async fn an_api_users_token_carries_only_their_scopes(db: &TestDb) {
    let dir = TempDir::new("tokens");
    let mut w = world(db, Some(&key_file(&dir, &[&new_key()]))).await;
    let alice = Who::boot().user("alice");
    ok(w.admin
        .put_api_user(alice.r(api_user_req("acme", "dave", &["documents:read"], false)))
        .await);
    let reply = w.issue(token_req("crm", "dave", "/hr")).await;
    assert!(reply.issued, "{reply:?}");
    let (_, claims) = verify_independently(&reply.token, &w.jwks().await);
    assert_eq!(claims["scp"], serde_json::json!(["documents:read"]));
    // Another user of the same app is not narrowed.
    let reply = w.issue(token_req("crm", "bob", "/hr")).await;
    let (_, claims) = verify_independently(&reply.token, &w.jwks().await);
    assert_eq!(
        claims["scp"],
        serde_json::json!(["documents:read", "documents:write"])
    );
    w.server.stop().await;
}
