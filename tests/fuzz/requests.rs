//! Target `requests`: every request type of both services, decoded with prost and parsed by the
//! function its handler parses it with (`consentry::convert::Parse`, through the one list in
//! `parsers.rs`). The caller is bound to every tenant and holds every capability, so only
//! validation can refuse; half of the cases name an acting user.
//!
//! Each case is one of: arbitrary bytes; a request generated field by field from the descriptor
//! with hostile values (long, NUL, control characters, separators, extreme numbers, unknown
//! enums, invalid UTF-8); or such a request's encoding with byte-level mutations. An accepted
//! request is then parsed again with each of its fields made hostile alone (`one_field.rs`),
//! and each of those must be refused.

use consentry::convert::Parsing;
use consentry::service::status::ServiceError;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use crate::describe::{self, Choices, Leaf, Mutation, protos};
use crate::harness::{self, Finding, finding, fuzz};
use crate::one_field;
use crate::parsers::{self, PARSERS, Parser, Verdict, parsing};

/// The input of one case.
#[derive(Debug, Clone)]
enum Input {
    /// Any bytes at all.
    Raw(Vec<u8>),
    /// A request generated from these choices.
    Generated(Vec<u32>),
    /// A generated request's encoding, mutated.
    Mutated(Vec<u32>, Vec<Mutation>),
}

impl Input {
    fn bytes(&self, name: &str) -> Vec<u8> {
        let generated =
            |choices: &[u32]| describe::generate(protos(), name, &mut Choices::new(choices), 3);
        match self {
            Input::Raw(bytes) => bytes.clone(),
            Input::Generated(choices) => generated(choices),
            Input::Mutated(choices, mutations) => describe::mutate(generated(choices), mutations),
        }
    }
}

fn inputs() -> impl Strategy<Value = Input> {
    let choices = || prop::collection::vec(any::<u32>(), 0..160);
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..256).prop_map(Input::Raw),
        3 => choices().prop_map(Input::Generated),
        2 => (choices(), prop::collection::vec(any::<(u16, u8, u8)>(), 1..4))
            .prop_map(|(c, m)| Input::Mutated(c, m)),
    ]
}

/// The first second of year 1 and the last of year 9999, in Unix seconds.
const TIMESTAMP_RANGE: std::ops::RangeInclusive<i64> = -62_135_596_800..=253_402_300_799;

/// What one parse came to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Undecodable,
    Rejected,
    /// Accepted, with the request's canonical encoding.
    Accepted(Vec<u8>),
}

/// Checks one verdict: a rejection is a clear `INVALID_ARGUMENT` naming a field of `name`; an
/// accepted request holds no NUL and no timestamp outside years 1 to 9999.
fn check(name: &str, fields: &[String], verdict: Verdict) -> Result<Outcome, TestCaseError> {
    let (canonical, checked) = match verdict {
        Verdict::Undecodable => return Ok(Outcome::Undecodable),
        Verdict::Decoded(canonical, checked) => (canonical, checked),
    };
    if let Err(e) = checked {
        harness::rejection(fields, e)?;
        return Ok(Outcome::Rejected);
    }
    for leaf in describe::leaves(protos(), name, &canonical) {
        match leaf {
            Leaf::Str(field, value) if value.contains('\0') => {
                finding(
                    Finding::Nul,
                    format!("{name}.{field} = {}", harness::shorten(&value)),
                )?;
            }
            Leaf::Timestamp(field, seconds) if !TIMESTAMP_RANGE.contains(&seconds) => {
                finding(
                    Finding::TimestampRange,
                    format!("{name}.{field}.seconds = {seconds}"),
                )?;
            }
            _ => {}
        }
    }
    Ok(Outcome::Accepted(canonical))
}

/// An accepted request (`canonical`) with each of its fields made hostile in turn
/// ([`one_field::one_field_at_a_time`]): each must be refused as any rejection is.
fn each_field_hostile(
    name: &str,
    fields: &[String],
    parse: Parser,
    canonical: &[u8],
    cx: &Parsing,
) -> Result<(), TestCaseError> {
    for (field, variant) in one_field::one_field_at_a_time(name, canonical) {
        let with = |why: &str| TestCaseError::fail(format!("made hostile in {field}: {why}"));
        match check(name, fields, parse(&variant, cx)) {
            Ok(Outcome::Rejected) => {}
            Ok(Outcome::Undecodable) => return Err(with("undecodable")),
            Ok(Outcome::Accepted(_)) => return Err(with("accepted")),
            Err(TestCaseError::Fail(why)) => return Err(with(why.message())),
            Err(other) => return Err(other),
        }
    }
    Ok(())
}

/// One case: the input parsed and checked, and if it is accepted, each of its fields made
/// hostile in turn (so a field that no parse looks at is found from any accepted request).
fn case(
    name: &str,
    fields: &[String],
    parse: Parser,
    bytes: &[u8],
    cx: &Parsing,
) -> Result<(), TestCaseError> {
    match check(name, fields, parse(bytes, cx))? {
        Outcome::Undecodable => harness::tally("undecodable"),
        Outcome::Rejected => harness::tally("rejected"),
        Outcome::Accepted(canonical) => {
            harness::tally("accepted");
            each_field_hostile(name, fields, parse, &canonical, cx)?;
        }
    }
    Ok(())
}

/// The message of a failed check.
fn why(e: TestCaseError) -> String {
    match e {
        TestCaseError::Fail(why) | TestCaseError::Reject(why) => why.message().to_owned(),
    }
}

/// Fuzzes every request type of `service` through its parser in [`PARSERS`]: first its
/// examples, each accepted and refused with any one field made hostile, then generated cases.
fn service(service: &str) {
    let names = protos().requests(service);
    assert!(
        !names.is_empty(),
        "{service} has no rpcs in the descriptor set"
    );
    let unlisted: Vec<_> = names
        .iter()
        .filter(|n| parsers::entry(n).is_none())
        .collect();
    assert!(
        unlisted.is_empty(),
        "{service}: add {unlisted:?} to the list in tests/fuzz/parsers.rs"
    );
    let budget = harness::budget().map(|b| b / names.len() as u32);
    for name in &names {
        let fields = protos().fields(name);
        let entry = parsers::entry(name).expect("listed");
        let parse = entry.parse;
        for (i, example) in (entry.examples)().iter().enumerate() {
            for acting in [false, true] {
                let cx = parsing(acting);
                if let Verdict::Decoded(_, Err(e)) = parse(example, &cx) {
                    panic!("{service}.{name}: example {i} is refused: {e}");
                }
                let canonical = match check(name, &fields, parse(example, &cx)) {
                    Ok(Outcome::Accepted(canonical)) => canonical,
                    other => panic!("{service}.{name}: example {i} is not accepted: {other:?}"),
                };
                if let Err(e) = each_field_hostile(name, &fields, parse, &canonical, &cx) {
                    panic!("{service}.{name}: example {i}: {}", why(e));
                }
            }
        }
        let cases = (inputs(), any::<bool>());
        fuzz(
            &format!("{service}.{name}"),
            budget,
            cases,
            |(input, acting)| {
                let bytes = input.bytes(name);
                case(name, &fields, parse, &bytes, &parsing(acting))
            },
        );
    }
}

#[test]
fn every_admin_request_decodes_and_parses_without_panic() {
    service("AdminService");
}

#[test]
fn every_permission_request_decodes_and_parses_without_panic() {
    service("PermissionService");
}

#[test]
fn the_list_names_each_request_type_of_the_two_services_once() {
    let requests: Vec<String> = ["AdminService", "PermissionService"]
        .iter()
        .flat_map(|s| protos().requests(s))
        .collect();
    let mut listed: Vec<&str> = PARSERS.iter().map(|e| e.name).collect();
    let strays: Vec<_> = listed
        .iter()
        .filter(|n| !requests.iter().any(|r| r == *n))
        .collect();
    assert!(
        strays.is_empty(),
        "not a request type of either service: {strays:?}"
    );
    listed.sort_unstable();
    let before = listed.len();
    listed.dedup();
    assert_eq!(before, listed.len(), "a request type is listed twice");
    assert_eq!(listed.len(), requests.len(), "every request type is listed");
}

#[test]
fn the_checks_fail_on_what_they_look_for() {
    // A rejection naming a field the request lacks, and one that is not INVALID_ARGUMENT.
    let fields = vec!["tenant_id".to_owned()];
    let stray = consentry::domain::ValidationError::new("nope", "x");
    assert!(harness::validation(&fields, stray).is_err());
    let internal = ServiceError::Internal {
        what: "x",
        cause: anyhow::anyhow!("x"),
    };
    assert!(harness::rejection(&fields, internal).is_err());
    let named = consentry::domain::ValidationError::new("tenant_id[0].x", "x");
    assert!(harness::validation(&fields, named).is_ok());
    // An accepted request with a NUL is found.
    let request = consentry::proto::DeleteUserRequest {
        tenant_id: "t\0".to_owned(),
        user_id: "u".to_owned(),
    };
    let bytes = prost::Message::encode_to_vec(&request);
    let leaves = describe::leaves(protos(), "DeleteUserRequest", &bytes);
    assert!(
        leaves
            .iter()
            .any(|l| matches!(l, Leaf::Str(f, v) if f == "tenant_id" && v == "t\0"))
    );
}
