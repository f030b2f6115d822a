//! Target `authzen`: the AuthZEN readers (`convert::authzen`), what the HTTP listener runs on
//! every body, on arbitrary JSON and on well-formed requests with one member replaced by an
//! arbitrary value. Nothing panics; a refusal is `INVALID_ARGUMENT` (or the caller's bounds)
//! naming a member of the request, briefly.

use consentry::convert::Parsing;
use consentry::convert::authzen;
use consentry::domain::{Caller, Capabilities, Capability, ClientId, TenantBounds};
use consentry::service::status::ServiceError;
use consentry::store::PageSecret;
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::harness::{self, fuzz};

/// An arbitrary JSON value, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        any::<String>().prop_map(Value::String),
        "[a-z_/]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("subject".to_owned()),
                    Just("resource".to_owned()),
                    Just("action".to_owned()),
                    Just("context".to_owned()),
                    Just("type".to_owned()),
                    Just("id".to_owned()),
                    Just("name".to_owned()),
                    Just("properties".to_owned()),
                    Just("evaluations".to_owned()),
                    Just("page".to_owned()),
                    any::<String>(),
                ],
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A well-formed request.
fn good() -> Value {
    json!({
        "subject": {"type": "user", "id": "dave"},
        "resource": {"type": "path", "id": "/hr", "properties": {"tenant_id": "acme", "app_id": "crm"}},
        "action": {"name": "READ"},
        "context": {"consistency": {"minimize_latency": true}},
        "options": {"evaluations_semantic": "execute_all"},
        "evaluations": [{}, {"action": {"name": "WRITE"}}],
        "page": {"limit": 2}
    })
}

/// The JSON pointers of every member of [`good`], where a case puts its value.
const MEMBERS: &[&str] = &[
    "/subject",
    "/subject/type",
    "/subject/id",
    "/resource",
    "/resource/type",
    "/resource/id",
    "/resource/properties",
    "/resource/properties/tenant_id",
    "/resource/properties/app_id",
    "/action",
    "/action/name",
    "/context",
    "/context/consistency",
    "/options",
    "/options/evaluations_semantic",
    "/evaluations",
    "/evaluations/0",
    "/evaluations/1/action",
    "/page",
    "/page/limit",
];

/// What a case feeds the readers.
#[derive(Debug, Clone)]
enum Input {
    /// Any JSON.
    Any(Value),
    /// A well-formed request with the member at `MEMBERS[i]` replaced.
    Replaced(usize, Value),
}

fn body(input: Input) -> Value {
    match input {
        Input::Any(v) => v,
        Input::Replaced(i, v) => {
            let mut body = good();
            if let Some(slot) = body.pointer_mut(MEMBERS[i % MEMBERS.len()]) {
                *slot = v;
            }
            body
        }
    }
}

/// A refusal names a member of the request (or is the caller's bounds), briefly.
fn refusal(e: ServiceError) -> Result<(), proptest::test_runner::TestCaseError> {
    if let ServiceError::Rule(_) = e {
        return Ok(());
    }
    let fields = [
        "body",
        "subject",
        "resource",
        "action",
        "context",
        "options",
        "evaluations",
        "page",
    ]
    .map(str::to_owned);
    harness::rejection(&fields, e)
}

#[test]
fn authzen_bodies_are_read_or_refused_naming_their_member() {
    let caller = Caller {
        client_id: ClientId::parse("client_id", "pep").unwrap(),
        tenants: TenantBounds::parse("tenants", &["acme".to_owned()]).unwrap(),
        capabilities: Capabilities::of([Capability::Query]),
    };
    let secret = PageSecret([9; 32]);
    let cx = Parsing {
        caller: &caller,
        acting_user: None,
        limits: consentry::convert::Limits::default(),
        page_secret: &secret,
    };
    let inputs = prop_oneof![
        any_json().prop_map(Input::Any),
        (0..MEMBERS.len(), any_json()).prop_map(|(i, v)| Input::Replaced(i, v)),
    ];
    fuzz("authzen", harness::budget(), inputs, |input| {
        let body = body(input);
        let mut read = 0;
        for outcome in [
            authzen::evaluation(&cx, &body).map(|_| ()),
            authzen::evaluations(&cx, &body).map(|_| ()),
            authzen::action_search(&cx, &body).map(|_| ()),
            authzen::resource_search(&cx, &secret, &body).map(|_| ()),
        ] {
            match outcome {
                Ok(()) => read += 1,
                Err(e) => refusal(e)?,
            }
        }
        harness::tally(if read > 0 { "read" } else { "refused" });
        Ok(())
    });
}
