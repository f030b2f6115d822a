//! An HTTP request as a check asks it (docs/rules.md §10.3): the resource its path names under a
//! route's prefix, and the permission its method needs. What the mesh's authorizer and any other
//! HTTP-facing edge share, so that one request is read one way.

use super::error::quoted;
use super::{PermissionName, ResourcePath, Right, Valid, ValidationError};

/// The resource an HTTP request path names under `prefix`: the query and fragment removed,
/// percent-decoded once, `.` segments dropped and a trailing `/` ignored. Refused, naming
/// `field`: an empty segment (`//`), a `..` segment, a `\` or an encoded `/` (which the upstream may not read as
/// the check does), a `;` (path parameters, cut by some servers before they normalise), a `%`
/// left after decoding (encoded twice), a lookalike of `.`, `/` or `\`, a control character and
/// a bad percent escape.
pub fn resource_of_path(field: &str, prefix: &ResourcePath, raw: &str) -> Valid<ResourcePath> {
    let fail = |problem: &str| {
        Err(ValidationError::new(
            field,
            format_args!("{} {problem}", quoted(raw)),
        ))
    };
    let path = raw.split(['?', '#']).next().unwrap_or_default();
    if !path.starts_with('/') {
        return fail("is not an absolute path");
    }
    let mut resource = prefix.as_str().trim_end_matches('/').to_owned();
    let segments: Vec<&str> = path.split('/').collect();
    let last = segments.len() - 1;
    for (i, raw_segment) in segments.into_iter().enumerate() {
        if raw_segment.is_empty() && i != 0 && i != last {
            // `/a//b`: servers that do not merge slashes (Envoy's default) see another path.
            return fail("has an empty segment ('//')");
        }
        let Some(segment) = decode_once(raw_segment) else {
            return fail("has a bad percent escape");
        };
        if segment.contains(['/', '\\']) {
            return fail("has a '\\' or an encoded '/' in a segment");
        }
        if segment.contains(';') {
            // `/a/..;/b` is `/b` to servers that cut path parameters before normalising.
            return fail("has a ';' (a path parameter)");
        }
        if segment.contains('%') {
            // Encoded twice: a server that decodes again would see another path.
            return fail("has a '%' left after decoding");
        }
        if segment.contains(LOOKALIKES) {
            return fail("has a character that some servers read as '.', '/' or '\\'");
        }
        if segment.chars().any(char::is_control) {
            return fail("has a NUL or another control character");
        }
        match segment.as_str() {
            "" | "." => {}
            ".." => return fail("has a '..' segment"),
            _ => {
                resource.push('/');
                resource.push_str(&segment);
            }
        }
    }
    if resource.is_empty() {
        resource.push('/');
    }
    ResourcePath::parse(field, resource)
}

/// Characters that servers applying Unicode compatibility mappings read as `.`, `/` or `\`
/// (fullwidth forms, the division slash, the set minus, the one-dot leader).
const LOOKALIKES: [char; 6] = [
    '\u{FF0E}', '\u{FF0F}', '\u{FF3C}', '\u{2215}', '\u{2216}', '\u{2024}',
];

/// `segment` with each `%XX` replaced by its byte, once; `None` when an escape is not two hex
/// digits or the bytes are not UTF-8.
fn decode_once(segment: &str) -> Option<String> {
    if !segment.contains('%') {
        return Some(segment.to_owned());
    }
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Which permission each HTTP method needs: by default GET and HEAD read, POST, PUT and PATCH
/// edit items, DELETE deletes items; a method the table does not name is not allowed at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodTable(Vec<(String, PermissionName)>);

impl Default for MethodTable {
    fn default() -> Self {
        use super::FinePermission::{DeleteItems, EditItems};
        let read = PermissionName::Level(Right::Read);
        Self(
            [
                ("GET", read),
                ("HEAD", read),
                ("POST", PermissionName::Fine(EditItems)),
                ("PUT", PermissionName::Fine(EditItems)),
                ("PATCH", PermissionName::Fine(EditItems)),
                ("DELETE", PermissionName::Fine(DeleteItems)),
            ]
            .into_iter()
            .map(|(m, p)| (m.to_owned(), p))
            .collect(),
        )
    }
}

impl MethodTable {
    /// A table of `(method, permission name)` pairs, each name as a check spells it, naming
    /// `field` in the error; a method named twice is refused.
    pub fn parse(field: &str, pairs: &[(String, String)]) -> Valid<Self> {
        let mut table: Vec<(String, PermissionName)> = Vec::with_capacity(pairs.len());
        for (method, name) in pairs {
            let valid = !method.is_empty() && method.bytes().all(|b| b.is_ascii_uppercase());
            if !valid {
                return Err(ValidationError::new(
                    field,
                    format_args!("{} is not an HTTP method in upper case", quoted(method)),
                ));
            }
            if table.iter().any(|(m, _)| m == method) {
                return Err(ValidationError::new(
                    field,
                    format_args!("{} is named twice", quoted(method)),
                ));
            }
            table.push((method.clone(), PermissionName::parse(field, name)?));
        }
        Ok(Self(table))
    }

    /// The permission `method` needs, if the table names it (methods are case-sensitive).
    pub fn permission(&self, method: &str) -> Option<PermissionName> {
        self.0.iter().find(|(m, _)| m == method).map(|(_, p)| *p)
    }

    /// The permission `method` needs; a method the table does not name is refused, naming
    /// `field` and the methods it does.
    pub fn permission_of(&self, field: &str, method: &str) -> Valid<PermissionName> {
        self.permission(method).ok_or_else(|| {
            let named: Vec<&str> = self.0.iter().map(|(m, _)| m.as_str()).collect();
            ValidationError::new(
                field,
                format_args!(
                    "{} is not a method the table maps to a permission ({})",
                    quoted(method),
                    named.join(", ")
                ),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::testing::path as p;

    fn under(prefix: &str, raw: &str) -> Result<String, String> {
        resource_of_path("path", &p(prefix), raw)
            .map(|r| r.as_str().to_owned())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_path_is_cut_at_its_query_decoded_once_and_normalised() {
        assert_eq!(under("/", "/").unwrap(), "/");
        assert_eq!(
            under("/", "").unwrap_err(),
            "path: \"\" is not an absolute path"
        );
        assert_eq!(under("/", "/hr/team?x=1#f").unwrap(), "/hr/team");
        assert_eq!(under("/hr", "/team/docs/").unwrap(), "/hr/team/docs");
        assert_eq!(under("/hr", "/").unwrap(), "/hr");
        assert_eq!(under("/", "/a/./b/").unwrap(), "/a/b");
        assert_eq!(under("/", "/a%20b/%C3%A9").unwrap(), "/a b/é");
    }

    #[test]
    fn what_could_leave_the_prefix_or_confuse_the_upstream_is_refused() {
        for (raw, problem) in [
            ("/a/../b", "'..'"),
            ("/a//b", "empty segment"),
            ("//a", "empty segment"),
            ("/a/%2e%2e/b", "'..'"),
            ("/a%2Fb", "encoded '/'"),
            ("/a%5cb", "'\\'"),
            ("/a\\b", "'\\'"),
            ("/a%00", "NUL"),
            ("/a%09", "control"),
            ("/public/..;/secret", "';'"),
            ("/public/..%3B/secret", "';'"),
            ("/public/.;/x", "';'"),
            ("/public/%252e%252e/secret", "'%' left"),
            ("/\u{FF0E}\u{FF0E}/secret", "read as"),
            ("/a%zz", "bad percent escape"),
            ("/a%+0", "bad percent escape"),
            ("/a%4", "bad percent escape"),
            ("/a%ff", "bad percent escape"),
            ("hr/team", "absolute"),
        ] {
            let e = under("/hr", raw).unwrap_err();
            assert!(e.starts_with("path: "), "{raw}: {e}");
            assert!(e.contains(problem), "{raw}: {e}");
        }
        // Too many segments for a resource: the domain's own limit, named by field.
        let deep = "/s".repeat(40);
        assert!(under("/", &deep).unwrap_err().starts_with("path: "));
    }

    proptest::proptest! {
        /// Whatever the path, the answer is a refusal naming the field or a resource under the
        /// prefix with no `.` or `..` segment.
        #[test]
        fn any_path_is_refused_or_lands_under_the_prefix(
            raw in "[/a-z.;%0-9A-F?#\\\\\\x00\u{FF0E}]{0,40}",
        ) {
            match resource_of_path("path", &p("/hr"), &raw) {
                Ok(resource) => {
                    proptest::prop_assert!(p("/hr").covers(&resource), "{}", resource);
                    proptest::prop_assert!(
                        resource.as_str().split('/').all(|s| s != ".." && s != "."),
                        "{}", resource
                    );
                }
                Err(e) => proptest::prop_assert_eq!(e.field, "path"),
            }
        }
    }

    #[test]
    fn methods_map_to_permissions_by_the_table() {
        let table = MethodTable::default();
        assert_eq!(table.permission("GET").unwrap().as_str(), "READ");
        assert_eq!(table.permission("HEAD").unwrap().as_str(), "READ");
        assert_eq!(table.permission("PATCH").unwrap().as_str(), "EDIT_ITEMS");
        assert_eq!(table.permission("DELETE").unwrap().as_str(), "DELETE_ITEMS");
        assert_eq!(table.permission("get"), None);
        assert_eq!(table.permission("OPTIONS"), None);

        let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        let custom = MethodTable::parse("method_table", &pairs(&[("GET", "VIEW_ITEMS")])).unwrap();
        assert_eq!(custom.permission("GET").unwrap().as_str(), "VIEW_ITEMS");
        assert_eq!(custom.permission("POST"), None);
        for bad in [
            pairs(&[("get", "READ")]),
            pairs(&[("GET", "read")]),
            pairs(&[("GET", "READ"), ("GET", "WRITE")]),
        ] {
            assert!(
                MethodTable::parse("method_table", &bad)
                    .unwrap_err()
                    .to_string()
                    .starts_with("method_table: ")
            );
        }
    }
}
