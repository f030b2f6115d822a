//! Validated identifiers and text: newtypes that can only hold values within the limits of
//! docs/rules.md §2, parsed once at the edge.

use std::borrow::Borrow;
use std::fmt;

use super::error::{Valid, ValidationError};

/// The longest identifier, scope or external id, in bytes (identifiers) or characters.
pub const MAX_ID_LEN: usize = 128;

/// Whether `b` may appear in an identifier or a scope: `[A-Za-z0-9._@:-]`.
pub fn is_id_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b':' | b'-')
}

/// Checks the identifier alphabet and length shared by ids and scopes.
fn check_id(field: &str, value: &str) -> Valid<()> {
    if value.is_empty() {
        return Err(ValidationError::new(field, "is required"));
    }
    if value.len() > MAX_ID_LEN {
        return Err(ValidationError::new(
            field,
            format_args!(
                "is {} bytes long; at most {MAX_ID_LEN} are allowed",
                value.len()
            ),
        ));
    }
    if let Some(c) = value
        .chars()
        .find(|c| !c.is_ascii() || !is_id_byte(*c as u8))
    {
        return Err(ValidationError::new(
            field,
            format_args!("contains {c:?}; only letters, digits and . _ @ : - are allowed"),
        ));
    }
    Ok(())
}

macro_rules! identifier {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// Parses `value`, naming `field` in the error (an owned `String` is kept, not copied).
            pub fn parse(field: &str, value: impl AsRef<str> + Into<String>) -> Valid<Self> {
                check_id(field, value.as_ref())?;
                Ok(Self(value.into()))
            }

            /// Parses an optional value: empty is `None`.
            pub fn parse_optional(
                field: &str,
                value: impl AsRef<str> + Into<String>,
            ) -> Valid<Option<Self>> {
                if value.as_ref().is_empty() { Ok(None) } else { Self::parse(field, value).map(Some) }
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

identifier!(
    /// A tenant: one customer environment.
    TenantId
);
identifier!(
    /// A user of a tenant, as the caller's identity provider names them.
    UserId
);
identifier!(
    /// An application's client id (application key).
    AppId
);
identifier!(
    /// A calling client of consentry.
    ClientId
);
identifier!(
    /// An external permission group, unique in its tenant.
    GroupId
);
identifier!(
    /// An external permission, unique in its tenant.
    PermissionId
);
identifier!(
    /// An API scope such as `documents:read`: matched exactly and case-sensitively.
    Scope
);

/// Checks free text: `min..=max` characters, no control characters except those allowed.
fn check_text(field: &str, value: &str, min: usize, max: usize, allow_newlines: bool) -> Valid<()> {
    let len = value.chars().count();
    if len < min {
        return Err(ValidationError::new(field, "is required"));
    }
    if len > max {
        return Err(ValidationError::new(
            field,
            format_args!("is {len} characters long; at most {max} are allowed"),
        ));
    }
    let allowed = |c: char| allow_newlines && matches!(c, '\n' | '\t');
    if let Some(c) = value.chars().find(|c| c.is_control() && !allowed(*c)) {
        return Err(ValidationError::new(
            field,
            format_args!("contains the control character {c:?}"),
        ));
    }
    Ok(())
}

macro_rules! text {
    ($(#[$doc:meta])* $name:ident, $min:expr, $max:expr, $newlines:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// The most characters allowed.
            pub const MAX_CHARS: usize = $max;

            /// Parses `value`, naming `field` in the error.
            pub fn parse(field: &str, value: &str) -> Valid<Self> {
                check_text(field, value, $min, $max, $newlines)?;
                Ok(Self(value.to_owned()))
            }

            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text!(
    /// A permission's code in its owning application: 1–128 printable characters.
    ExternalId, 1, MAX_ID_LEN, false
);
text!(
    /// A tenant's environment (`production`, `stage`, …): 1–64 printable characters.
    Environment, 1, 64, false
);
text!(
    /// A display name: 1–256 printable characters.
    Name, 1, 256, false
);
text!(
    /// Free text: up to 4096 characters; newlines and tabs allowed.
    Description, 0, 4096, true
);
text!(
    /// The target an audit listing is filtered by (`user:alice`, `app:crm`, …): 1–256 printable
    /// characters. Any such text is a valid filter; one that names no target matches nothing.
    AuditTarget, 1, 256, false
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_accept_the_alphabet_and_reject_the_rest() {
        assert!(TenantId::parse("t", "acme-prod_1.eu@x:y").is_ok());
        assert!(TenantId::parse("t", "a".repeat(128)).is_ok());
        let err = TenantId::parse("tenant_id", "a".repeat(129)).unwrap_err();
        assert_eq!(err.field, "tenant_id");
        assert!(err.problem.contains("129 bytes"));
        assert!(
            TenantId::parse("t", "")
                .unwrap_err()
                .problem
                .contains("required")
        );
        for bad in ["a b", "a/b", "é", "a\n", "a*"] {
            assert!(UserId::parse("u", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn optional_identifiers_treat_empty_as_absent() {
        assert_eq!(UserId::parse_optional("u", "").unwrap(), None);
        assert!(UserId::parse_optional("u", "bob").unwrap().is_some());
        assert!(UserId::parse_optional("u", "b b").is_err());
    }

    #[test]
    fn text_limits_count_characters_and_reject_control_characters() {
        assert!(ExternalId::parse("e", "Ü-42 with spaces").is_ok());
        assert!(ExternalId::parse("e", &"é".repeat(128)).is_ok());
        assert!(ExternalId::parse("e", &"é".repeat(129)).is_err());
        assert!(ExternalId::parse("e", "").is_err());
        assert!(ExternalId::parse("e", "a\tb").is_err());
        assert!(Description::parse("d", "").is_ok());
        assert!(Description::parse("d", "line\nline\tx").is_ok());
        assert!(Description::parse("d", "bell\u{7}").is_err());
        assert!(Name::parse("n", "").is_err());
    }

    #[test]
    fn text_rejects_nul_and_every_other_control_character() {
        for bad in ["a\0b", "\0", "a\u{1b}[31m", "a\u{7f}", "a\u{85}", "a\rb"] {
            let err = AuditTarget::parse("target", bad).unwrap_err();
            assert_eq!(err.field, "target");
            assert!(err.problem.contains("control character"), "{bad:?}: {err}");
            assert!(Name::parse("name", bad).is_err(), "{bad:?}");
            assert!(Description::parse("description", bad).is_err(), "{bad:?}");
            assert!(ExternalId::parse("external_id", bad).is_err(), "{bad:?}");
            assert!(Environment::parse("environment", bad).is_err(), "{bad:?}");
            assert!(UserId::parse("user_id", bad).is_err(), "{bad:?}");
        }
        assert!(AuditTarget::parse("target", "user:alice").is_ok());
        assert!(AuditTarget::parse("target", &"é".repeat(256)).is_ok());
        assert!(AuditTarget::parse("target", &"é".repeat(257)).is_err());
    }
}
