//! The one list of what the `requests` target fuzzes: every request type of both services,
//! named with the function its handler parses it with (`<T as consentry::convert::Parse>`),
//! called here exactly as the server calls it. Nothing of a handler's validation is copied:
//! a field a parse stops validating is a field the target finds unvalidated. A request type
//! of the descriptor set without an entry fails the target.

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

macro_rules! parsers {
    ($($request:ident),+ $(,)?) => {
        /// Every request type, by its short name in the descriptor set, with its parser.
        pub const PARSERS: &[(&str, Parser)] = &[$((stringify!($request), run::<$request>)),+];
    };
}

parsers![
    // PermissionService
    CheckAccessRequest,
    CheckAccessBatchRequest,
    ListExternalPermissionsRequest,
    CheckExternalPermissionRequest,
    GetAppScopesRequest,
    GetConsentPromptRequest,
    IssueContextTokenRequest,
    GetSigningKeysRequest,
    // AdminService
    PutTenantRequest,
    ListTenantsRequest,
    PutUserRequest,
    DeleteUserRequest,
    ListUsersRequest,
    GrantUserRightRequest,
    RevokeUserRightRequest,
    ListUserRightsRequest,
    PutApiUserRequest,
    DeleteApiUserRequest,
    ListApiUsersRequest,
    RegisterAppRequest,
    UpdateAppManifestRequest,
    UnregisterAppRequest,
    ListAppsRequest,
    ApproveConsentRequest,
    RevokeConsentRequest,
    ListConsentsRequest,
    PutWhitelistEntryRequest,
    DeleteWhitelistEntryRequest,
    ListWhitelistEntriesRequest,
    CreatePermissionGroupRequest,
    UpdatePermissionGroupRequest,
    DeletePermissionGroupRequest,
    ListPermissionGroupsRequest,
    CreateExternalPermissionRequest,
    DeleteExternalPermissionRequest,
    GrantExternalPermissionRequest,
    RevokeExternalPermissionRequest,
    CreateClientRequest,
    RevokeClientRequest,
    ListClientsRequest,
    ListAuditEventsRequest,
    GrantAppRightRequest,
    RevokeAppRightRequest,
];

/// The parser of the request type `name`, if the list has it.
pub fn parser(name: &str) -> Option<Parser> {
    PARSERS.iter().find(|(n, _)| *n == name).map(|(_, p)| *p)
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
