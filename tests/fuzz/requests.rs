//! Target `requests`: every request type of both services, decoded with prost and validated the
//! way its handler validates it (the same `convert` functions and domain parsers, in the same
//! order; `mirror_admin.rs` and `mirror_permission.rs` hold those steps, one arm per request
//! type, beside the handlers they copy). The caller is taken to be bound to every tenant and to
//! hold every capability, so only validation can refuse.
//!
//! Each case is one of: arbitrary bytes; a request generated field by field from the descriptor
//! with hostile values (long, NUL, control characters, separators, extreme numbers, unknown
//! enums, invalid UTF-8); or such a request's encoding with byte-level mutations.

use consentry::service::status::ServiceError;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use crate::describe::{self, Choices, Leaf, Mutation, protos};
use crate::harness::{self, Open, finding, fuzz};
use crate::{mirror_admin, mirror_permission};

/// What validation made of a request, with any finding the mirror itself noted.
pub type Checked = Result<Vec<(Open, String)>, ServiceError>;

/// The outcome of one input for one request type.
pub enum Verdict {
    /// prost refused the bytes (the transport's answer; not validation's business).
    Undecodable,
    /// The request decoded; its canonical encoding and what validation said.
    Decoded(Vec<u8>, Checked),
}

/// Decodes `bytes` as `M` and validates it with `validate`.
pub fn run<M: prost::Message + Default>(
    bytes: &[u8],
    validate: impl FnOnce(M) -> Checked,
) -> Verdict {
    match M::decode(bytes) {
        Err(_) => Verdict::Undecodable,
        Ok(request) => {
            let canonical = request.encode_to_vec();
            Verdict::Decoded(canonical, validate(request))
        }
    }
}

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

/// Checks one verdict: a rejection is a clear `INVALID_ARGUMENT` naming a field of `name`; an
/// accepted request holds no NUL and no timestamp outside years 1 to 9999.
fn check(name: &str, fields: &[String], verdict: Verdict) -> Result<(), TestCaseError> {
    let (canonical, checked) = match verdict {
        Verdict::Undecodable => {
            harness::tally("undecodable");
            return Ok(());
        }
        Verdict::Decoded(canonical, checked) => (canonical, checked),
    };
    let notes = match checked {
        Err(e) => {
            harness::tally("rejected");
            return harness::rejection(fields, e);
        }
        Ok(notes) => notes,
    };
    harness::tally("accepted");
    for (open, example) in notes {
        finding(open, example)?;
    }
    let mut leaves = Vec::new();
    describe::leaves(
        protos(),
        &format!(".consentry.v1.{name}"),
        &canonical,
        "",
        &mut leaves,
    );
    for leaf in leaves {
        match leaf {
            Leaf::Str(field, value) if value.contains('\0') => {
                finding(
                    Open::Nul,
                    format!("{name}.{field} = {}", harness::shorten(&value)),
                )?;
            }
            Leaf::Timestamp(field, seconds) if !TIMESTAMP_RANGE.contains(&seconds) => {
                finding(
                    Open::TimestampRange,
                    format!("{name}.{field}.seconds = {seconds}"),
                )?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Fuzzes every request type of `service` through `validate` (`None`: no mirror for that type).
fn service(service: &str, validate: fn(&str, &[u8]) -> Option<Verdict>) {
    let names = protos().requests(service);
    assert!(
        !names.is_empty(),
        "{service} has no rpcs in the descriptor set"
    );
    let unmirrored: Vec<_> = names
        .iter()
        .filter(|n| validate(n, &[]).is_none())
        .collect();
    assert!(
        unmirrored.is_empty(),
        "{service}: add the validation of {unmirrored:?} to tests/fuzz/mirror_*.rs"
    );
    let budget = harness::budget().map(|b| b / names.len() as u32);
    for name in &names {
        let fields = protos().fields(name);
        fuzz(&format!("{service}.{name}"), budget, inputs(), |input| {
            let bytes = input.bytes(name);
            let verdict = validate(name, &bytes).expect("mirrored");
            check(name, &fields, verdict)
        });
    }
}

#[test]
fn every_admin_request_decodes_and_validates_without_panic() {
    service("AdminService", mirror_admin::validate);
}

#[test]
fn every_permission_request_decodes_and_validates_without_panic() {
    service("PermissionService", mirror_permission::validate);
}

#[test]
fn the_checks_fail_on_what_they_look_for() {
    // A rejection naming a field the request lacks, and one that is not INVALID_ARGUMENT.
    let fields = vec!["tenant_id".to_owned()];
    let stray = consentry::domain::ValidationError::new("nope", "x");
    assert!(harness::validation(&fields, stray).is_err());
    let internal = ServiceError::Internal("x".to_owned());
    assert!(harness::rejection(&fields, internal).is_err());
    let named = consentry::domain::ValidationError::new("tenant_id[0].x", "x");
    assert!(harness::validation(&fields, named).is_ok());
    // An accepted request with a NUL is found (known open, so recorded rather than failed).
    let request = consentry::proto::DeleteUserRequest {
        tenant_id: "t\0".to_owned(),
        user_id: "u".to_owned(),
    };
    let mut leaves = Vec::new();
    let bytes = prost::Message::encode_to_vec(&request);
    describe::leaves(
        protos(),
        ".consentry.v1.DeleteUserRequest",
        &bytes,
        "",
        &mut leaves,
    );
    assert!(
        leaves
            .iter()
            .any(|l| matches!(l, Leaf::Str(f, v) if f == "tenant_id" && v == "t\0"))
    );
}
