//! Whitelisting: a tenant's allow-list of applications, each with narrowed scopes and content access.

use std::collections::BTreeSet;

use super::ids::Scope;
use super::names::named_enum;

named_enum! {
    /// What content a whitelisted application may reach.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub enum ContentAccess {
        /// Only the signed-in user's own content (the default, and the only access without
        /// whitelisting).
        #[default]
        OwnContent = "OWN_CONTENT",
        /// Also content of managed users, acting on their behalf.
        OnBehalfOfManagedUsers = "ON_BEHALF_OF_MANAGED_USERS",
    }
    /// Every value.
    const ALL;
    /// The value's name.
    fn as_str;
    /// The value named `name`, if any.
    fn from_name;
}

/// A tenant's whitelist entry for an application. It takes effect only while the tenant's
/// whitelisting is enabled.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WhitelistEntry {
    /// Scopes the application may use; empty means every consented scope.
    pub allowed_scopes: BTreeSet<Scope>,
    /// Whether it may act on behalf of managed users.
    pub content_access: ContentAccess,
}
