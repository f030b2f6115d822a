//! Validation errors: what was wrong with an input, and which field it was in.

use std::fmt;

use super::{
    AppId, ClientId, ExternalId, GroupId, PermissionId, ResourcePath, Right, TenantId, UserId,
};

/// Input that does not satisfy the limits of the domain; reported as `INVALID_ARGUMENT`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct ValidationError {
    /// The request field at fault, such as `resource` or `items[3].app_id`.
    pub field: String,
    /// What is wrong with it.
    pub problem: String,
}

impl ValidationError {
    /// A validation error for `field`.
    pub fn new(field: impl Into<String>, problem: impl fmt::Display) -> Self {
        Self {
            field: field.into(),
            problem: problem.to_string(),
        }
    }

    /// The same error, with its field nested under `prefix` (`items[3]` + `app_id`).
    pub fn within(mut self, prefix: impl fmt::Display) -> Self {
        self.field = if self.field.is_empty() {
            prefix.to_string()
        } else {
            format!("{prefix}.{}", self.field)
        };
        self
    }
}

/// The most bytes of a bad value an error message quotes (escaped, without the quotes), so that
/// a hostile value cannot make a `grpc-message` that clients refuse.
pub const MAX_QUOTED_BYTES: usize = 64;

/// A request value quoted in an error message: `"…"` with Rust's escapes, cut after at most
/// [`MAX_QUOTED_BYTES`] bytes of its escaped text and then marked with `…`. Every message that
/// quotes a value a caller sent goes through this.
pub fn quoted(value: &str) -> Quoted<'_> {
    Quoted(value)
}

/// A value quoted by [`quoted`].
#[derive(Debug, Clone, Copy)]
pub struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write;
        f.write_char('"')?;
        let mut written = 0;
        for c in self.0.chars() {
            let escaped = c.escape_debug();
            let len: usize = escaped.clone().map(char::len_utf8).sum();
            if written + len > MAX_QUOTED_BYTES {
                return f.write_str("\"…");
            }
            written += len;
            for e in escaped {
                f.write_char(e)?;
            }
        }
        f.write_char('"')
    }
}

/// Something a request can name, for the two errors that name it: [`NotFound`] and
/// [`AlreadyExists`]. One wording for each, wherever it is found missing or present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entity {
    /// A tenant.
    Tenant(TenantId),
    /// An app in the registry.
    App(AppId),
    /// A user known in a tenant.
    User(TenantId, UserId),
    /// A tenant user's API-user record.
    ApiUser(TenantId, UserId),
    /// A user's right at a resource (`None`: any right).
    UserRight(UserId, ResourcePath, Option<Right>),
    /// An app's consent in force in a tenant.
    Consent(TenantId, AppId),
    /// An app's whitelist entry in a tenant.
    WhitelistEntry(TenantId, AppId),
    /// A permission group.
    Group(TenantId, GroupId),
    /// An external permission.
    Permission(TenantId, PermissionId),
    /// An external permission the caller can see (which one is not said: invisible ones must not
    /// be told apart from missing ones).
    VisiblePermission,
    /// A user's grant of an external permission.
    Grant(UserId, PermissionId),
    /// An API client (revoked ones count as existing for creation: ids are never reused).
    Client(ClientId),
    /// A client's key.
    ClientKey,
    /// An external permission's id within its group.
    ExternalId(GroupId, ExternalId),
    /// An app's site-level app right at a resource in a tenant (`None`: any right).
    AppRight(TenantId, AppId, ResourcePath, Option<Right>),
}

/// Something a request names does not exist; reported as `NOT_FOUND`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotFound(pub Entity);

impl std::error::Error for NotFound {}

impl fmt::Display for NotFound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Entity::Tenant(t) => write!(f, "tenant {t} does not exist"),
            Entity::App(a) => write!(f, "app {a} is not registered"),
            Entity::User(t, u) => write!(
                f,
                "user {u} is not known in tenant {t}; add them with PutUser"
            ),
            Entity::ApiUser(t, u) => write!(
                f,
                "user {u} is not an API user in tenant {t}; make them one with PutApiUser"
            ),
            Entity::UserRight(u, r, None) => write!(f, "user {u} holds no right at {r}"),
            Entity::UserRight(u, r, Some(right)) => {
                write!(f, "user {u} does not hold {right} at {r}")
            }
            Entity::Consent(t, a) => write!(f, "app {a} has no consent in force in tenant {t}"),
            Entity::WhitelistEntry(t, a) => {
                write!(f, "app {a} has no whitelist entry in tenant {t}")
            }
            Entity::Group(t, g) => write!(f, "permission group {g} does not exist in tenant {t}"),
            Entity::Permission(t, p) => {
                write!(f, "external permission {p} does not exist in tenant {t}")
            }
            Entity::VisiblePermission => {
                f.write_str("no such external permission is visible to the caller")
            }
            Entity::Grant(u, p) => write!(f, "user {u} holds no grant of {p}"),
            Entity::Client(c) => write!(f, "client {c} does not exist or is already revoked"),
            Entity::ClientKey => f.write_str("no client holds this key"),
            Entity::ExternalId(g, e) => write!(
                f,
                "group {g} has no permission with external id {:?}",
                e.as_str()
            ),
            Entity::AppRight(t, a, r, None) => {
                write!(f, "app {a} holds no app right at {r} in tenant {t}")
            }
            Entity::AppRight(t, a, r, Some(right)) => {
                write!(
                    f,
                    "app {a} does not hold {right} as an app right at {r} in tenant {t}"
                )
            }
        }
    }
}

/// Something a request would create exists already; reported as `ALREADY_EXISTS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlreadyExists(pub Entity);

impl std::error::Error for AlreadyExists {}

impl fmt::Display for AlreadyExists {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Entity::Tenant(t) => write!(f, "tenant {t} already exists"),
            Entity::App(a) => write!(f, "app {a} is already registered"),
            Entity::User(t, u) => write!(f, "user {u} is already known in tenant {t}"),
            Entity::ApiUser(t, u) => write!(f, "user {u} is already an API user in tenant {t}"),
            Entity::UserRight(u, r, _) => write!(f, "user {u} already holds a right at {r}"),
            Entity::Consent(t, a) => {
                write!(f, "app {a} already has a consent in force in tenant {t}")
            }
            Entity::WhitelistEntry(t, a) => {
                write!(f, "app {a} already has a whitelist entry in tenant {t}")
            }
            Entity::Group(t, g) => write!(f, "permission group {g} already exists in tenant {t}"),
            Entity::Permission(t, p) => {
                write!(f, "external permission {p} already exists in tenant {t}")
            }
            Entity::VisiblePermission => f.write_str("the external permission already exists"),
            Entity::Grant(u, p) => write!(f, "user {u} already holds a grant of {p}"),
            Entity::Client(c) => {
                write!(f, "client {c} already exists (client ids are never reused)")
            }
            Entity::ClientKey => f.write_str("another client already holds this key"),
            Entity::ExternalId(g, e) => write!(
                f,
                "group {g} already has a permission with external id {:?}",
                e.as_str()
            ),
            Entity::AppRight(t, a, r, _) => {
                write!(f, "app {a} already holds an app right at {r} in tenant {t}")
            }
        }
    }
}

/// The result of parsing or validating an input.
pub type Valid<T> = Result<T, ValidationError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_short_values_whole_and_cuts_long_ones() {
        assert_eq!(quoted("READ").to_string(), "\"READ\"");
        assert_eq!(quoted("a\0b").to_string(), "\"a\\0b\"");
        let long = quoted(&"x".repeat(10_000)).to_string();
        assert_eq!(long, format!("\"{}\"…", "x".repeat(MAX_QUOTED_BYTES)));
        // Escapes count as what they print: a value of control characters stays short too.
        let escaped = quoted(&"\u{1}".repeat(10_000)).to_string();
        assert!(escaped.len() <= MAX_QUOTED_BYTES + 5, "{escaped}");
        assert!(escaped.starts_with("\"\\u{1}") && escaped.ends_with("\"…"));
        let wide = quoted(&"é".repeat(10_000)).to_string();
        assert!(wide.len() <= MAX_QUOTED_BYTES + 5, "{wide}");
        assert_eq!(quoted(&"y".repeat(MAX_QUOTED_BYTES)).to_string().len(), 66);
    }
}
