//! Target `paths`: `ResourcePath::parse` and `parse_or_root` on arbitrary strings, on path-like
//! strings built from hostile segments, and on mutated well-formed paths. An accepted path keeps
//! the shape the rest of the server relies on; a rejection names the field briefly.

use consentry::domain::ResourcePath;
use consentry::domain::path::{MAX_PATH_BYTES, MAX_PATH_SEGMENTS};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use crate::describe::{self, Choices, Mutation};
use crate::harness::{self, fuzz};

/// How a path of one case is made.
#[derive(Debug, Clone)]
enum PathInput {
    /// Any string.
    Text(String),
    /// `/` joined hostile segments, with or without the leading and a trailing `/`.
    Segments(Vec<Vec<u32>>, bool, bool),
    /// A well-formed path of `n` short segments, mutated byte by byte.
    Mutated(usize, Vec<Mutation>),
}

fn text(input: &PathInput) -> String {
    match input {
        PathInput::Text(s) => s.clone(),
        PathInput::Segments(segments, lead, trail) => {
            let segments: Vec<String> = segments
                .iter()
                .map(|c| describe::string(&mut Choices::new(c)))
                .collect();
            let mut path = segments.join("/");
            if *lead {
                path.insert(0, '/');
            }
            if *trail {
                path.push('/');
            }
            path
        }
        PathInput::Mutated(n, m) => {
            let path: String = (0..*n).map(|i| format!("/s{i}")).collect();
            String::from_utf8_lossy(&describe::mutate(path.into_bytes(), m)).into_owned()
        }
    }
}

fn inputs() -> impl Strategy<Value = PathInput> {
    prop_oneof![
        any::<String>().prop_map(PathInput::Text),
        (
            prop::collection::vec(prop::collection::vec(any::<u32>(), 0..3), 0..40),
            prop::bool::weighted(0.9),
            prop::bool::weighted(0.1),
        )
            .prop_map(|(s, lead, trail)| PathInput::Segments(s, lead, trail)),
        (
            0..40usize,
            prop::collection::vec(any::<(u16, u8, u8)>(), 0..4)
        )
            .prop_map(|(n, m)| PathInput::Mutated(n, m)),
    ]
}

/// What the server relies on of an accepted path.
fn well_formed(value: &str, path: &ResourcePath) -> Result<(), TestCaseError> {
    prop_assert_eq!(path.as_str(), value, "paths are never normalised");
    prop_assert!(value.starts_with('/') && value.len() <= MAX_PATH_BYTES);
    prop_assert!(!value.chars().any(char::is_control), "a control character");
    prop_assert!(path.depth() <= MAX_PATH_SEGMENTS);
    let chain: Vec<&str> = path.self_and_ancestors().collect();
    prop_assert_eq!(chain.len(), path.depth() + 1);
    prop_assert_eq!(chain.last().copied(), Some(value));
    for ancestor in chain {
        let parsed = ResourcePath::parse("resource", ancestor);
        prop_assert!(parsed.is_ok(), "ancestor {ancestor:?} does not parse");
        prop_assert!(
            parsed.unwrap().covers(path),
            "{ancestor:?} does not cover its descendant"
        );
    }
    Ok(())
}

#[test]
fn paths_are_parsed_without_panic_and_refused_as_invalid_argument() {
    let fields = ["resource".to_owned()];
    fuzz("paths", harness::budget(), inputs(), |input| {
        let value = text(&input);
        match ResourcePath::parse("resource", value.as_str()) {
            Ok(path) => {
                harness::tally("accepted");
                well_formed(&value, &path)?;
            }
            Err(e) => {
                harness::tally("rejected");
                harness::validation(&fields, e)?;
            }
        }
        match ResourcePath::parse_or_root("resource", value.as_str()) {
            Ok(path) if value.is_empty() => prop_assert_eq!(path, ResourcePath::root()),
            Ok(path) => well_formed(&value, &path)?,
            Err(e) => harness::validation(&fields, e)?,
        }
        Ok(())
    });
}
