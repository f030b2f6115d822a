//! [`named_enum!`]: an enum whose every value has one fixed name (the token callers, audit
//! records and messages spell it by), declared once with its names.

/// Declares a fieldless enum whose values each have a fixed name, and with it:
/// `ALL` (every value, in declaration order), `as_str` (the value's name), `from_name` (the
/// value of an exact name) and `Display` (the name). The enum's attributes and doc comments, each
/// variant's, and those of the three items are written at the call:
///
/// ```text
/// named_enum! {
///     /// What the enum is.
///     #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
///     pub enum Kind {
///         /// What the value is.
///         Standard = "STANDARD",
///     }
///     /// Every kind.
///     const ALL;
///     /// The kind's name.
///     fn as_str;
///     /// The kind named `name`, if any.
///     fn from_name;
/// }
/// ```
macro_rules! named_enum {
    (
        $(#[$attr:meta])*
        $vis:vis enum $name:ident {
            $(
                $(#[$variant_attr:meta])*
                $variant:ident = $text:literal,
            )+
        }
        $(#[$all_attr:meta])*
        const ALL;
        $(#[$as_str_attr:meta])*
        fn as_str;
        $(#[$from_name_attr:meta])*
        fn from_name;
    ) => {
        $(#[$attr])*
        $vis enum $name {
            $(
                $(#[$variant_attr])*
                $variant,
            )+
        }

        impl $name {
            $(#[$all_attr])*
            pub const ALL: [$name; { [$(stringify!($variant)),+].len() }] = [$($name::$variant),+];

            $(#[$as_str_attr])*
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            $(#[$from_name_attr])*
            pub fn from_name(name: &str) -> Option<$name> {
                $name::ALL.into_iter().find(|value| value.as_str() == name)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub(crate) use named_enum;

#[cfg(test)]
mod tests {
    use super::super::*;

    /// Every enum declared with [`named_enum!`]: its names, in `ALL` order.
    fn tables() -> Vec<(&'static str, Vec<&'static str>)> {
        fn names<T: Copy>(all: &[T], as_str: fn(T) -> &'static str) -> Vec<&'static str> {
            all.iter().map(|v| as_str(*v)).collect()
        }
        vec![
            ("AppKind", names(&AppKind::ALL, AppKind::as_str)),
            ("RunAs", names(&RunAs::ALL, RunAs::as_str)),
            ("Policy", names(&Policy::ALL, Policy::as_str)),
            ("ScopeLevel", names(&ScopeLevel::ALL, ScopeLevel::as_str)),
            ("Right", names(&Right::ALL, Right::as_str)),
            (
                "FinePermission",
                names(&FinePermission::ALL, FinePermission::as_str),
            ),
            ("Step", names(&Step::ALL, Step::as_str)),
            ("Reason", names(&Reason::ALL, Reason::as_str)),
            (
                "ContentAccess",
                names(&ContentAccess::ALL, ContentAccess::as_str),
            ),
            (
                "ReapprovalReason",
                names(&ReapprovalReason::ALL, ReapprovalReason::as_str),
            ),
            (
                "ReportedPolicy",
                names(&ReportedPolicy::ALL, ReportedPolicy::as_str),
            ),
            (
                "ManagerAccess",
                names(&ManagerAccess::ALL, ManagerAccess::as_str),
            ),
            ("Role", names(&Role::ALL, Role::as_str)),
            ("Capability", names(&Capability::ALL, Capability::as_str)),
            ("ChangeKind", names(&ChangeKind::ALL, ChangeKind::as_str)),
        ]
    }

    #[test]
    fn every_name_is_its_values_and_parses_back_to_it() {
        for (table, names) in tables() {
            let mut seen = std::collections::BTreeSet::new();
            for name in &names {
                assert!(seen.insert(*name), "{table}: {name} twice");
            }
        }
        for value in Right::ALL {
            assert_eq!(Right::from_name(value.as_str()), Some(value));
            assert_eq!(value.to_string(), value.as_str());
        }
        for value in Reason::ALL {
            assert_eq!(Reason::from_name(value.as_str()), Some(value));
        }
        assert_eq!(Right::from_name("read"), None, "names are exact");
        assert_eq!(Right::from_name("READ "), None);
        assert_eq!(Capability::from_name("QUERY"), None);
    }

    #[test]
    fn the_tables_say_what_they_always_said() {
        let expected: Vec<(&str, &[&str])> = vec![
            ("AppKind", &["STANDARD", "CUSTOM"]),
            ("RunAs", &["USER_CONTEXT", "SYSTEM_USER"]),
            ("Policy", &["USER_AND_APP", "USER_ONLY"]),
            ("ScopeLevel", &["TENANCY", "SITE_COLLECTION", "WEB", "LIST"]),
            ("Right", &["READ", "WRITE", "MANAGE", "FULL_CONTROL"]),
            (
                "FinePermission",
                &[
                    "VIEW_ITEMS",
                    "OPEN_ITEMS",
                    "VIEW_VERSIONS",
                    "CREATE_ALERTS",
                    "USE_SELF_SERVICE_SITE_CREATION",
                    "VIEW_PAGES",
                    "ADD_ITEMS",
                    "EDIT_ITEMS",
                    "DELETE_ITEMS",
                    "DELETE_VERSIONS",
                    "BROWSE_DIRECTORIES",
                    "EDIT_PERSONAL_USER_INFORMATION",
                    "MANAGE_PERSONAL_VIEWS",
                    "ADD_REMOVE_PERSONAL_WEB_PARTS",
                    "UPDATE_PERSONAL_WEB_PARTS",
                    "MANAGE_LISTS",
                    "ADD_AND_CUSTOMIZE_PAGES",
                    "APPLY_THEMES_AND_BORDERS",
                    "APPLY_STYLE_SHEETS",
                ],
            ),
            (
                "Step",
                &[
                    "TENANT",
                    "APP",
                    "WHITELIST",
                    "CONSENT",
                    "SCOPE",
                    "USER",
                    "ON_BEHALF_OF",
                    "PERMISSION",
                ],
            ),
            (
                "Reason",
                &[
                    "ALLOWED",
                    "UNKNOWN_TENANT",
                    "UNKNOWN_APP",
                    "APP_NOT_WHITELISTED",
                    "NO_CONSENT",
                    "CONSENT_REVOKED",
                    "REAPPROVAL_REQUIRED",
                    "SCOPE_NOT_GRANTED",
                    "IMPERSONATION_NOT_ALLOWED",
                    "USER_REQUIRED",
                    "APP_PERMISSION_INSUFFICIENT",
                    "USER_PERMISSION_INSUFFICIENT",
                ],
            ),
            (
                "ContentAccess",
                &["OWN_CONTENT", "ON_BEHALF_OF_MANAGED_USERS"],
            ),
            (
                "ReapprovalReason",
                &[
                    "RUN_AS_SYSTEM_USER",
                    "WEBHOOKS_ADDED",
                    "DATABASE_MIRRORING_ADDED",
                ],
            ),
            ("ReportedPolicy", &["USER_AND_APP", "USER_ONLY", "APP_ONLY"]),
            ("ManagerAccess", &["READ", "READ_WRITE"]),
            (
                "Role",
                &[
                    "GENERAL_ADMIN",
                    "USER_ADMIN",
                    "PERMISSION_MANAGER",
                    "DELEGATE",
                ],
            ),
            (
                "Capability",
                &["query", "admin", "app_manager", "assert_user"],
            ),
            (
                "ChangeKind",
                &[
                    "RUN_AS_SYSTEM_USER",
                    "WEBHOOKS_ADDED",
                    "DATABASE_MIRRORING_ADDED",
                    "SCOPES_ADDED",
                    "PERMISSION_REQUESTS_ADDED",
                    "RIGHT_RAISED",
                    "APP_ONLY_ADDED",
                    "POLICY_RELAXED",
                ],
            ),
        ];
        let tables = tables();
        assert_eq!(tables.len(), expected.len());
        for ((table, names), (name, want)) in tables.iter().zip(&expected) {
            assert_eq!(table, name);
            assert_eq!(&names[..], *want, "{table}");
        }
    }
}
