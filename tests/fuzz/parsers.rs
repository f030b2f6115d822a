//! The one list of what the `requests` target fuzzes: every request type of both services,
//! named with the function its handler parses it with (`<T as consentry::convert::Parse>`),
//! called here exactly as the server calls it, and one or more well-formed examples of it.
//! Nothing of a handler's validation is copied: a field a parse stops validating is a field the
//! target finds unvalidated, from the examples in every run (each must be accepted, and refused
//! with any one of its fields made hostile) and from whatever generated request is accepted. A
//! request type of the descriptor set without an entry fails the target.

use std::sync::OnceLock;

use consentry::convert::{Limits, Parse, Parsing};
use consentry::domain::{Caller, Capabilities, ClientId, TenantBounds, UserId};
use consentry::proto::*;
use consentry::service::status::ServiceError;
use consentry::store::PageSecret;
use prost::Message;

/// The page-token secret of the fuzzed "deployment".
pub const FUZZ_SECRET: PageSecret = PageSecret([7; 32]);

/// What parsing made of a request: its command (dropped here), or why it was refused.
pub type Checked = Result<(), ServiceError>;

/// The outcome of one input for one request type.
pub enum Verdict {
    /// prost refused the bytes (the transport's answer; not validation's business).
    Undecodable,
    /// The request decoded; its canonical encoding and what parsing said.
    Decoded(Vec<u8>, Checked),
}

/// Decodes `bytes` as one request type and parses it for the caller in the `Parsing`.
pub type Parser = fn(&[u8], &Parsing<'_>) -> Verdict;

/// Decodes `bytes` as `M` and parses it with `M`'s own [`Parse`], as its handler does.
fn run<M: Message + Default + Parse>(bytes: &[u8], cx: &Parsing<'_>) -> Verdict {
    match M::decode(bytes) {
        Err(_) => Verdict::Undecodable,
        Ok(request) => {
            let canonical = request.encode_to_vec();
            Verdict::Decoded(canonical, request.parse(cx).map(drop))
        }
    }
}

/// One request type of the list.
pub struct Entry {
    /// Its short name in the descriptor set.
    pub name: &'static str,
    /// Decodes and parses it.
    pub parse: Parser,
    /// Well-formed requests of the type, encoded: each must be accepted, and refused with any
    /// one of its fields made hostile (`one_field.rs`), in every run.
    pub examples: fn() -> Vec<Vec<u8>>,
}

/// The list: each request type with one or more well-formed examples (`|` between them), whose
/// fields not named are left empty.
macro_rules! parsers {
    ($($request:ident $({ $($field:ident: $value:expr),* $(,)? })|+),+ $(,)?) => {
        /// Every request type, by its short name in the descriptor set, with its parser.
        #[allow(clippy::needless_update)]
        pub const PARSERS: &[Entry] = &[$(Entry {
            name: stringify!($request),
            parse: run::<$request>,
            examples: || vec![$($request { $($field: $value,)* ..Default::default() }.encode_to_vec()),+],
        }),+];
    };
}

fn s(text: &str) -> String {
    text.to_owned()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|t| s(t)).collect()
}

/// A consistency that names a revision token, so that its string is checked too.
fn fresh() -> Option<Consistency> {
    Some(Consistency {
        requirement: Some(consistency::Requirement::AtLeastAsFresh(s("r1"))),
    })
}

fn manifest() -> Option<Manifest> {
    Some(Manifest {
        scopes: strings(&["Sites.Read", "files.write"]),
        permission_requests: vec![PermissionRequest {
            scope_level: ScopeLevel::Web.into(),
            right: Right::Write.into(),
        }],
        ..Manifest::default()
    })
}

/// A batch item naming every field but the consistency (a batch item has none).
fn item() -> CheckAccessRequest {
    CheckAccessRequest {
        tenant_id: s("acme"),
        app_id: s("crm"),
        user_id: s("alice"),
        on_behalf_of: s("bob"),
        scope: s("Sites.Read"),
        permission: s("EDIT_ITEMS"),
        resource: s("/hr/team"),
        consistency: None,
        explain: true,
    }
}

fn managers() -> Vec<Manager> {
    vec![Manager {
        principal: s("user:alice"),
        access: ManagerAccess::ReadWrite.into(),
    }]
}

fn at(seconds: i64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp { seconds, nanos: 0 })
}

parsers![
    // PermissionService
    CheckAccessRequest {
        tenant_id: s("acme"),
        app_id: s("crm"),
        user_id: s("alice"),
        on_behalf_of: s("bob"),
        scope: s("Sites.Read"),
        permission: s("EDIT_ITEMS"),
        resource: s("/hr/team"),
        consistency: fresh(),
        explain: true,
    } | { tenant_id: s("acme"), app_id: s("crm") },
    CheckAccessBatchRequest {
        items: vec![item(), item()],
        consistency: fresh(),
    },
    ListExternalPermissionsRequest {
        tenant_id: s("acme"),
        user_id: s("alice"),
        group_id: s("g1"),
        app_id: s("crm"),
        page_size: 10,
        consistency: fresh(),
    },
    CheckExternalPermissionRequest {
        tenant_id: s("acme"),
        user_id: s("alice"),
        permission_id: s("p1"),
        app_id: s("crm"),
        consistency: fresh(),
    } | {
        tenant_id: s("acme"),
        user_id: s("alice"),
        group_id: s("g1"),
        external_id: s("ext-1"),
    },
    GetAppScopesRequest { tenant_id: s("acme"), app_id: s("crm"), consistency: fresh() },
    GetConsentPromptRequest { tenant_id: s("acme"), app_id: s("crm"), consistency: fresh() },
    IssueContextTokenRequest {
        tenant_id: s("acme"),
        app_id: s("crm"),
        user_id: s("alice"),
        on_behalf_of: s("bob"),
        resource: s("/hr"),
        audience: s("https://files.example"),
        ttl_seconds: 60,
        consistency: fresh(),
    } | { tenant_id: s("acme"), app_id: s("crm"), audience: s("files") },
    GetSigningKeysRequest {},
    // AdminService
    PutTenantRequest { tenant_id: s("acme"), environment: s("production") },
    ListTenantsRequest { page_size: 10 },
    PutUserRequest {
        tenant_id: s("acme"),
        user_id: s("alice"),
        roles: vec![Role::GeneralAdmin.into(), Role::Delegate.into()],
    },
    DeleteUserRequest { tenant_id: s("acme"), user_id: s("alice") },
    ListUsersRequest { tenant_id: s("acme") },
    GrantUserRightRequest {
        tenant_id: s("acme"),
        user_id: s("alice"),
        resource: s("/hr"),
        right: Right::Read.into(),
    },
    RevokeUserRightRequest {
        tenant_id: s("acme"),
        user_id: s("alice"),
        resource: s("/hr"),
        right: Right::Read.into(),
    },
    ListUserRightsRequest { tenant_id: s("acme"), user_id: s("alice") },
    PutApiUserRequest {
        tenant_id: s("acme"),
        user_id: s("alice"),
        scopes: strings(&["Sites.Read"]),
    },
    DeleteApiUserRequest { tenant_id: s("acme"), user_id: s("alice") },
    ListApiUsersRequest { tenant_id: s("acme") },
    RegisterAppRequest {
        app_id: s("crm"),
        name: s("CRM"),
        kind: AppKind::Custom.into(),
        manifest: manifest(),
    },
    UpdateAppManifestRequest { app_id: s("crm"), manifest: manifest() },
    UnregisterAppRequest { app_id: s("crm") },
    ListAppsRequest {},
    ApproveConsentRequest {
        tenant_id: s("acme"),
        app_id: s("crm"),
        manifest_revision: 1,
        resolved_requests: vec![ResolvedRequest {
            scope_level: ScopeLevel::Web.into(),
            right: Right::Write.into(),
            resource: s("/hr"),
        }],
    },
    RevokeConsentRequest { tenant_id: s("acme"), app_id: s("crm") },
    ListConsentsRequest { tenant_id: s("acme") },
    PutWhitelistEntryRequest {
        tenant_id: s("acme"),
        app_id: s("crm"),
        allowed_scopes: strings(&["Sites.Read"]),
        content_access: ContentAccess::OnBehalfOfManagedUsers.into(),
    },
    DeleteWhitelistEntryRequest { tenant_id: s("acme"), app_id: s("crm") },
    ListWhitelistEntriesRequest { tenant_id: s("acme") },
    CreatePermissionGroupRequest {
        tenant_id: s("acme"),
        group_id: s("g1"),
        name: s("Human Resources"),
        description: s("who may see what"),
        managers: managers(),
        grantors: strings(&["user:bob"]),
        visible_to: strings(&["app:crm"]),
    },
    UpdatePermissionGroupRequest {
        tenant_id: s("acme"),
        group_id: s("g1"),
        name: s("Human Resources"),
        description: s("who may see what"),
        managers: managers(),
        grantors: strings(&["user:bob"]),
        visible_to: strings(&["client:c1"]),
    },
    DeletePermissionGroupRequest { tenant_id: s("acme"), group_id: s("g1") },
    ListPermissionGroupsRequest { tenant_id: s("acme") },
    CreateExternalPermissionRequest {
        tenant_id: s("acme"),
        group_id: s("g1"),
        permission_id: s("p1"),
        name: s("Payroll"),
        description: s("sees payroll"),
        external_id: s("ext-1"),
    },
    DeleteExternalPermissionRequest { tenant_id: s("acme"), permission_id: s("p1") },
    GrantExternalPermissionRequest {
        tenant_id: s("acme"),
        user_id: s("alice"),
        permission_id: s("p1"),
        expires_at: at(1_700_000_000),
    },
    RevokeExternalPermissionRequest {
        tenant_id: s("acme"),
        user_id: s("alice"),
        permission_id: s("p1"),
    },
    CreateClientRequest {
        client_id: s("c2"),
        tenants: strings(&["acme"]),
        capabilities: vec![Capability::Query.into()],
    },
    RevokeClientRequest { client_id: s("c2") },
    ListClientsRequest {},
    ListAuditEventsRequest {
        tenant_id: s("acme"),
        target: s("user:alice"),
        actor: s("client:c1"),
        since: at(1_700_000_000),
    },
    GrantAppRightRequest {
        tenant_id: s("acme"),
        app_id: s("crm"),
        resource: s("/hr"),
        right: Right::Read.into(),
    },
    RevokeAppRightRequest {
        tenant_id: s("acme"),
        app_id: s("crm"),
        resource: s("/hr"),
        right: Right::Read.into(),
    },
];

/// The entry of the request type `name`, if the list has it.
pub fn entry(name: &str) -> Option<&'static Entry> {
    PARSERS.iter().find(|e| e.name == name)
}

/// The caller of every fuzzed request: bound to every tenant and holding every capability, so
/// that only validation refuses.
fn caller() -> &'static Caller {
    static CALLER: OnceLock<Caller> = OnceLock::new();
    CALLER.get_or_init(|| Caller {
        client_id: ClientId::parse("client_id", "fuzz").expect("a client id"),
        tenants: TenantBounds::All,
        capabilities: Capabilities::all(),
    })
}

/// The acting user of the cases that name one.
fn acting_user() -> &'static UserId {
    static USER: OnceLock<UserId> = OnceLock::new();
    USER.get_or_init(|| UserId::parse("user_id", "fuzz-admin").expect("a user id"))
}

/// What a fuzzed request is parsed with: the all-powerful caller, with or without an acting
/// user, the limits of a server started without flags, and [`FUZZ_SECRET`].
pub fn parsing(with_acting_user: bool) -> Parsing<'static> {
    Parsing {
        caller: caller(),
        acting_user: with_acting_user.then(acting_user),
        limits: Limits::default(),
        page_secret: &FUZZ_SECRET,
    }
}
