//! Resource paths: `/` is the tenancy, `/hr` a site collection, `/hr/team` a web,
//! `/hr/team/docs` a list, anything deeper folders and items. Paths are accepted or
//! rejected, never normalised.

use std::borrow::Borrow;
use std::fmt;

use super::error::{Valid, ValidationError, quoted};

/// The longest path, in bytes.
pub const MAX_PATH_BYTES: usize = 1024;
/// The most segments a path may have.
pub const MAX_PATH_SEGMENTS: usize = 32;

/// A well-formed resource path: `/` or `/seg(/seg)*`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourcePath(String);

impl ResourcePath {
    /// The tenancy: `/`.
    pub fn root() -> Self {
        Self("/".to_owned())
    }

    /// Parses `value`, naming `field` in the error (an owned `String` is kept, not copied).
    /// Empty is an error; see [`Self::parse_or_root`].
    pub fn parse(field: &str, value: impl AsRef<str> + Into<String>) -> Valid<Self> {
        Self::check(field, value.as_ref())?;
        Ok(Self(value.into()))
    }

    /// Checks that `value` is a well-formed path, naming `field` in the error.
    fn check(field: &str, value: &str) -> Valid<()> {
        let fail = |problem: &str| {
            Err(ValidationError::new(
                field,
                format_args!("{problem} (got {})", quoted(value)),
            ))
        };
        if value.is_empty() {
            return Err(ValidationError::new(field, "is required"));
        }
        if value.len() > MAX_PATH_BYTES {
            return Err(ValidationError::new(
                field,
                format_args!(
                    "is {} bytes long; at most {MAX_PATH_BYTES} are allowed",
                    value.len()
                ),
            ));
        }
        if !value.starts_with('/') {
            return fail("must start with '/'");
        }
        if value.chars().any(char::is_control) {
            return fail("must not contain control characters");
        }
        if value == "/" {
            return Ok(());
        }
        if value.ends_with('/') {
            return fail("must not end with '/'");
        }
        let mut segments = 0;
        for segment in value[1..].split('/') {
            segments += 1;
            match segment {
                "" => return fail("must not contain an empty segment"),
                "." | ".." => return fail("must not contain a '.' or '..' segment"),
                _ => {}
            }
        }
        if segments > MAX_PATH_SEGMENTS {
            return Err(ValidationError::new(
                field,
                format_args!("has {segments} segments; at most {MAX_PATH_SEGMENTS} are allowed"),
            ));
        }
        Ok(())
    }

    /// Parses `value`, where empty means `/`.
    pub fn parse_or_root(field: &str, value: impl AsRef<str> + Into<String>) -> Valid<Self> {
        if value.as_ref().is_empty() {
            Ok(Self::root())
        } else {
            Self::parse(field, value)
        }
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number of segments: 0 for `/`, 1 for `/hr`, 2 for `/hr/team`.
    pub fn depth(&self) -> usize {
        if self.0 == "/" {
            0
        } else {
            self.0.matches('/').count()
        }
    }

    /// Whether this path is `other` or one of its ancestors (a grant here applies there).
    pub fn covers(&self, other: &ResourcePath) -> bool {
        let (me, them) = (self.0.as_str(), other.0.as_str());
        me == "/" || me == them || (them.starts_with(me) && them.as_bytes()[me.len()] == b'/')
    }

    /// This path and its ancestors, from `/` down to the path itself.
    pub fn self_and_ancestors(&self) -> impl Iterator<Item = &str> {
        let path = self.0.as_str();
        let cuts = path.match_indices('/').skip(1).map(|(i, _)| i);
        std::iter::once("/")
            .chain(cuts.map(move |i| &path[..i]))
            .chain((path != "/").then_some(path))
    }
}

impl fmt::Display for ResourcePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Borrow<str> for ResourcePath {
    fn borrow(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::path as p;

    #[test]
    fn accepts_well_formed_paths() {
        for ok in [
            "/",
            "/hr",
            "/hr/team",
            "/hr/team/docs/a/b",
            "/a..b",
            "/.hidden",
            "/a b/ü",
        ] {
            assert_eq!(p(ok).as_str(), ok);
        }
    }

    #[test]
    fn rejects_malformed_paths_with_the_reason() {
        let cases = [
            ("hr", "start with '/'"),
            ("/hr/", "end with '/'"),
            ("//hr", "empty segment"),
            ("/hr//team", "empty segment"),
            ("/hr/./team", "'.' or '..'"),
            ("/hr/..", "'.' or '..'"),
            ("/.", "'.' or '..'"),
            ("/hr\n", "control"),
            ("", "required"),
        ];
        for (bad, why) in cases {
            let err = ResourcePath::parse("resource", bad).unwrap_err();
            assert_eq!(err.field, "resource");
            assert!(err.problem.contains(why), "{bad:?}: {}", err.problem);
        }
    }

    #[test]
    fn enforces_size_limits() {
        let deep = "/a".repeat(MAX_PATH_SEGMENTS);
        assert!(ResourcePath::parse("r", &deep).is_ok());
        assert!(
            ResourcePath::parse("r", format!("{deep}/a"))
                .unwrap_err()
                .problem
                .contains("33 segments")
        );
        let long = format!("/{}", "a".repeat(MAX_PATH_BYTES - 1));
        assert!(ResourcePath::parse("r", &long).is_ok());
        assert!(ResourcePath::parse("r", format!("{long}a")).is_err());
    }

    #[test]
    fn empty_means_root_only_where_allowed() {
        assert_eq!(
            ResourcePath::parse_or_root("r", "").unwrap(),
            ResourcePath::root()
        );
        assert!(ResourcePath::parse("r", "").is_err());
    }

    #[test]
    fn depth_counts_segments() {
        assert_eq!(p("/").depth(), 0);
        assert_eq!(p("/hr").depth(), 1);
        assert_eq!(p("/hr/web1").depth(), 2);
        assert_eq!(p("/hr/web1/docs").depth(), 3);
    }

    #[test]
    fn covers_itself_and_descendants_only() {
        assert!(p("/").covers(&p("/x/y")));
        assert!(p("/hr").covers(&p("/hr")));
        assert!(p("/hr").covers(&p("/hr/team")));
        assert!(!p("/hr").covers(&p("/hrx")));
        assert!(!p("/hr").covers(&p("/")));
        assert!(!p("/hr/team").covers(&p("/hr")));
        assert!(!p("/hr/team").covers(&p("/hr/other")));
    }

    #[test]
    fn lists_self_and_ancestors_from_the_root() {
        let docs = p("/hr/team/docs");
        let got: Vec<_> = docs.self_and_ancestors().collect();
        assert_eq!(got, ["/", "/hr", "/hr/team", "/hr/team/docs"]);
        assert_eq!(p("/").self_and_ancestors().collect::<Vec<_>>(), ["/"]);
    }
}
