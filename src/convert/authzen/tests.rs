#![allow(clippy::unwrap_used)]

use serde_json::json;

use super::*;
use crate::domain::{Caller, Capabilities, Capability, ClientId, Right, TenantBounds};
use crate::testing::path;

/// A `query` client bound to `acme`.
fn caller() -> Caller {
    Caller {
        client_id: ClientId::parse("client_id", "c1").unwrap(),
        tenants: TenantBounds::parse("tenants", &["acme".to_owned()]).unwrap(),
        capabilities: Capabilities::of([Capability::Query]),
    }
}

fn with_cx<R>(f: impl FnOnce(&Parsing<'_>) -> R) -> R {
    let caller = caller();
    let secret = PageSecret([7; 32]);
    let cx = Parsing {
        caller: &caller,
        acting_user: None,
        limits: crate::convert::Limits { max_batch: 3 },
        page_secret: &secret,
    };
    f(&cx)
}

fn field_of(e: ServiceError) -> String {
    match e {
        ServiceError::Invalid(v) => v.field,
        other => panic!("not a validation error: {other:?}"),
    }
}

fn request() -> Value {
    json!({
        "subject": {"type": "user", "id": "dave", "properties": {"department": "Sales"}},
        "resource": {"type": "path", "id": "/hr/team", "properties": {"tenant_id": "acme", "app_id": "crm"}},
        "action": {"name": "EDIT_ITEMS", "properties": {"method": "GET"}},
        "context": {"time": "1985-10-26T01:22-07:00"},
        "unknown": [1, 2, 3]
    })
}

#[test]
fn an_evaluation_is_an_access_question_and_extra_members_are_ignored() {
    let e = with_cx(|cx| evaluation(cx, &request())).unwrap();
    assert_eq!(e.query.tenant_id.as_str(), "acme");
    assert_eq!(e.query.app_id.as_str(), "crm");
    assert_eq!(e.query.user_id.unwrap().as_str(), "dave");
    assert_eq!(e.query.resource, path("/hr/team"));
    assert_eq!(e.query.permission.unwrap().as_str(), "EDIT_ITEMS");
    assert_eq!(e.wanted, Wanted::Cached);
}

#[test]
fn an_app_subject_is_an_app_only_question_and_scope_is_an_action() {
    let body = json!({
        "subject": {"type": "app", "id": "reports"},
        "resource": {"type": "path", "id": "/", "properties": {"tenant_id": "acme"}},
        "action": {"name": "scope", "properties": {"scope": "documents:read"}},
        "context": {"on_behalf_of": "dave", "consistency": {"fully_consistent": true}}
    });
    let e = with_cx(|cx| evaluation(cx, &body)).unwrap();
    assert_eq!(e.query.app_id.as_str(), "reports");
    assert_eq!(e.query.user_id, None);
    assert_eq!(e.query.scope.unwrap().as_str(), "documents:read");
    assert_eq!(e.query.permission, None);
    assert_eq!(e.query.on_behalf_of.unwrap().as_str(), "dave");
    assert_eq!(e.wanted, Wanted::Store);
}

#[test]
fn each_missing_or_misshapen_member_is_named() {
    let cases: Vec<(Value, &str)> = vec![
        (json!([]), "body"),
        (
            json!({"resource": request()["resource"], "action": request()["action"]}),
            "subject",
        ),
        (
            json!({"subject": "dave", "resource": request()["resource"], "action": request()["action"]}),
            "subject",
        ),
        (
            json!({"subject": {"type": "user"}, "resource": request()["resource"], "action": request()["action"]}),
            "subject.id",
        ),
        (
            json!({"subject": {"type": "group", "id": "x"}, "resource": request()["resource"], "action": request()["action"]}),
            "subject.type",
        ),
        (
            json!({"subject": {"type": "user", "id": 7}, "resource": request()["resource"], "action": request()["action"]}),
            "subject.id",
        ),
        (
            json!({"subject": request()["subject"], "resource": {"type": "path", "id": "/"}, "action": request()["action"]}),
            "resource.properties",
        ),
        (
            json!({"subject": request()["subject"], "resource": {"type": "doc", "id": "/", "properties": {"tenant_id": "acme", "app_id": "crm"}}, "action": request()["action"]}),
            "resource.type",
        ),
        (
            json!({"subject": request()["subject"], "resource": {"type": "path", "id": "/a/../b", "properties": {"tenant_id": "acme", "app_id": "crm"}}, "action": request()["action"]}),
            "resource.id",
        ),
        (
            json!({"subject": request()["subject"], "resource": {"type": "path", "properties": {"tenant_id": "acme", "app_id": "crm"}}, "action": request()["action"]}),
            "resource.id",
        ),
        (
            json!({"subject": request()["subject"], "resource": {"type": "path", "id": "/", "properties": {"tenant_id": "acme"}}, "action": request()["action"]}),
            "resource.properties.app_id",
        ),
        (
            json!({"subject": request()["subject"], "resource": request()["resource"]}),
            "action",
        ),
        (
            json!({"subject": request()["subject"], "resource": request()["resource"], "action": {"name": "read"}}),
            "action.name",
        ),
        (
            json!({"subject": request()["subject"], "resource": request()["resource"], "action": {"name": "scope"}}),
            "action.properties",
        ),
        (
            json!({"subject": request()["subject"], "resource": request()["resource"], "action": request()["action"], "context": {"consistency": {"at_least_as_fresh": "nope"}}}),
            "context.consistency.at_least_as_fresh",
        ),
        (
            json!({"subject": request()["subject"], "resource": request()["resource"], "action": request()["action"], "context": {"on_behalf_of": ""}}),
            "context.on_behalf_of",
        ),
        (
            json!({"subject": {"type": "app", "id": "reports"}, "resource": request()["resource"], "action": request()["action"]}),
            "resource.properties.app_id",
        ),
    ];
    for (body, field) in cases {
        let e = with_cx(|cx| evaluation(cx, &body)).unwrap_err();
        assert_eq!(field_of(e), field, "{body}");
    }
}

#[test]
fn a_tenant_outside_the_callers_bounds_is_refused_before_anything_else() {
    let mut body = request();
    body["resource"]["properties"]["tenant_id"] = json!("globex");
    body["subject"]["id"] = json!(7);
    let e = with_cx(|cx| evaluation(cx, &body)).unwrap_err();
    assert!(matches!(e, ServiceError::Rule(_)), "{e:?}");
}

#[test]
fn evaluations_take_defaults_and_each_item_replaces_a_member_whole() {
    let body = json!({
        "subject": {"type": "user", "id": "dave"},
        "action": {"name": "READ"},
        "resource": {"type": "path", "id": "/", "properties": {"tenant_id": "acme", "app_id": "crm"}},
        "options": {"evaluations_semantic": "deny_on_first_deny", "another_option": "value"},
        "evaluations": [
            {"resource": {"type": "path", "id": "/hr", "properties": {"tenant_id": "acme", "app_id": "crm"}}},
            {},
            {"action": {"name": "DELETE_ITEMS"}, "subject": {"type": "user", "id": "bob"}}
        ]
    });
    let Evaluations::Many { items, semantic } = with_cx(|cx| evaluations(cx, &body)).unwrap()
    else {
        panic!("many");
    };
    assert_eq!(semantic, Semantic::DenyOnFirstDeny);
    let items: Vec<_> = items.into_iter().map(Result::unwrap).collect();
    assert_eq!(items[0].query.resource, path("/hr"));
    assert_eq!(items[1].query.resource, path("/"));
    assert_eq!(items[2].query.user_id.as_ref().unwrap().as_str(), "bob");
    assert_eq!(items[2].query.permission.unwrap().as_str(), "DELETE_ITEMS");
    assert_eq!(
        items[0].query.permission,
        Some(PermissionName::Level(Right::Read))
    );
}

#[test]
fn evaluations_without_items_are_one_evaluation_and_bad_batches_are_named() {
    let single = with_cx(|cx| evaluations(cx, &request())).unwrap();
    assert!(matches!(single, Evaluations::Single(_)));
    let mut empty = request();
    empty["evaluations"] = json!([]);
    assert!(matches!(
        with_cx(|cx| evaluations(cx, &empty)).unwrap(),
        Evaluations::Single(_)
    ));

    let mut unknown = request();
    unknown["options"] = json!({"evaluations_semantic": "first_come"});
    unknown["evaluations"] = json!([{}]);
    assert_eq!(
        field_of(with_cx(|cx| evaluations(cx, &unknown)).unwrap_err()),
        "options.evaluations_semantic"
    );
    let mut too_many = request();
    too_many["evaluations"] = json!([{}, {}, {}, {}]);
    assert_eq!(
        field_of(with_cx(|cx| evaluations(cx, &too_many)).unwrap_err()),
        "evaluations"
    );
    let missing = json!({"evaluations": [{"subject": {"type": "user", "id": "dave"}}]});
    assert_eq!(
        field_of(with_cx(|cx| evaluations(cx, &missing)).unwrap_err()),
        "evaluations[0].resource"
    );
    let mut bad_item = request();
    bad_item["evaluations"] = json!([{}, {"action": {"name": "nope"}}]);
    assert_eq!(
        field_of(with_cx(|cx| evaluations(cx, &bad_item)).unwrap_err()),
        "evaluations[1].action.name"
    );
    // A rule refuses one item alone.
    let mut elsewhere = request();
    elsewhere["evaluations"] = json!([{}, {"resource": {"type": "path", "id": "/", "properties": {"tenant_id": "globex", "app_id": "crm"}}}]);
    let Evaluations::Many { items, .. } = with_cx(|cx| evaluations(cx, &elsewhere)).unwrap() else {
        panic!("many");
    };
    assert!(items[0].is_ok());
    assert!(matches!(items[1], Err(ServiceError::Rule(_))));
}

#[test]
fn answers_are_cut_after_the_deciding_item() {
    let d = |b: bool| json!({"decision": b});
    let all = vec![d(true), d(false), d(true)];
    assert_eq!(cut(all.clone(), Semantic::ExecuteAll).len(), 3);
    assert_eq!(
        cut(all.clone(), Semantic::DenyOnFirstDeny),
        vec![d(true), d(false)]
    );
    assert_eq!(
        cut(all.clone(), Semantic::PermitOnFirstPermit),
        vec![d(true)]
    );
    assert_eq!(
        cut(vec![d(true), d(true)], Semantic::DenyOnFirstDeny).len(),
        2
    );
}

#[test]
fn resource_search_pages_are_bound_to_their_query() {
    let body = json!({
        "subject": {"type": "user", "id": "dave"},
        "action": {"name": "READ"},
        "resource": {"type": "path", "properties": {"tenant_id": "acme", "app_id": "crm"}},
        "page": {"limit": 2}
    });
    let secret = PageSecret([7; 32]);
    let first = with_cx(|cx| resource_search(cx, &secret, &body)).unwrap();
    assert_eq!(first.query.resource, path("/"));
    assert_eq!(first.page.limit, 2);
    let page = crate::store::Page {
        items: vec![path("/a")],
        next: Some(SearchPosition {
            after: path("/a"),
            limit: 2,
        }),
    };
    let token = crate::service::paging::next_page_token(&secret, &page, &first.listing);
    // The next page: the token, the limit left out or the same.
    let mut next = body.clone();
    next["page"] = json!({"token": token});
    let second = with_cx(|cx| resource_search(cx, &secret, &next)).unwrap();
    assert_eq!(second.page.after.unwrap().after, path("/a"));
    assert_eq!(second.page.limit, 2);
    // Another limit, another subject: refused.
    let mut other_limit = next.clone();
    other_limit["page"]["limit"] = json!(5);
    assert_eq!(
        field_of(with_cx(|cx| resource_search(cx, &secret, &other_limit)).unwrap_err()),
        "page.limit"
    );
    let mut other_subject = next.clone();
    other_subject["subject"]["id"] = json!("bob");
    assert_eq!(
        field_of(with_cx(|cx| resource_search(cx, &secret, &other_subject)).unwrap_err()),
        "page.token"
    );
    // A scope is no permission to search by.
    let mut scope = body.clone();
    scope["action"] = json!({"name": "scope", "properties": {"scope": "documents:read"}});
    assert_eq!(
        field_of(with_cx(|cx| resource_search(cx, &secret, &scope)).unwrap_err()),
        "action.name"
    );
}
