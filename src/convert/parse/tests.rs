#![allow(clippy::unwrap_used)]

use super::*;
use crate::domain::{Capabilities, Capability, ClientId, TenantBounds};
use crate::proto::*;

const SECRET: PageSecret = PageSecret([3; 32]);

/// A client bound to tenant `acme` with `capabilities`.
fn bound(capabilities: &[Capability]) -> Caller {
    Caller {
        client_id: ClientId::parse("client_id", "c1").unwrap(),
        tenants: TenantBounds::parse("tenants", &["acme".to_owned()]).unwrap(),
        capabilities: Capabilities::of(capabilities.iter().copied()),
    }
}

fn parsing<'a>(caller: &'a Caller, acting_user: Option<&'a UserId>) -> Parsing<'a> {
    Parsing {
        caller,
        acting_user,
        limits: Limits::default(),
        page_secret: &SECRET,
    }
}

fn check(tenant: &str, app: &str) -> CheckAccessRequest {
    CheckAccessRequest {
        tenant_id: tenant.into(),
        app_id: app.into(),
        ..CheckAccessRequest::default()
    }
}

#[test]
fn the_tenant_and_its_bounds_come_before_every_other_field() {
    let caller = bound(&[Capability::Query]);
    let cx = parsing(&caller, None);
    let outside = check("other", "bad app").parse(&cx).unwrap_err();
    assert!(matches!(outside, ServiceError::Rule(_)), "{outside:?}");
    let inside = check("acme", "bad app").parse(&cx).unwrap_err();
    assert!(
        matches!(&inside, ServiceError::Invalid(v) if v.field == "app_id"),
        "{inside:?}"
    );
    let ok = check("acme", "crm").parse(&cx).unwrap();
    assert_eq!(ok.query.tenant_id.as_str(), "acme");
    assert_eq!(ok.wanted, Wanted::Cached);
}

#[test]
fn a_batch_is_held_to_the_limit_it_is_parsed_with() {
    let caller = bound(&[Capability::Query]);
    let batch = |n: usize| CheckAccessBatchRequest {
        items: vec![check("acme", "crm"); n],
        consistency: None,
    };
    let small = Parsing {
        limits: Limits { max_batch: 2 },
        ..parsing(&caller, None)
    };
    let refused = batch(3).parse(&small).unwrap_err();
    assert!(
        matches!(&refused, ServiceError::Invalid(v) if v.field == "items" && v.problem.contains("at most 2")),
        "{refused:?}"
    );
    assert_eq!(batch(2).parse(&small).unwrap().queries.len(), 2);
    assert_eq!(
        batch(3)
            .parse(&parsing(&caller, None))
            .unwrap()
            .queries
            .len(),
        3
    );
    // An item out of bounds fails the batch as that item.
    let mut mixed = batch(2);
    mixed.items[1].tenant_id = "other".into();
    let refused = mixed.parse(&small).unwrap_err();
    assert!(
        matches!(&refused, ServiceError::Item { index: 1, source } if matches!(**source, ServiceError::Rule(_))),
        "{refused:?}"
    );
}

#[test]
fn refusals_that_depend_on_the_caller_come_before_the_fields_they_guard() {
    let query_only = bound(&[Capability::Query]);
    let cx = parsing(&query_only, None);
    // A context token naming a user needs assert_user, whatever the user id looks like.
    let naming = IssueContextTokenRequest {
        tenant_id: "acme".into(),
        app_id: "crm".into(),
        user_id: "not a user".into(),
        ..IssueContextTokenRequest::default()
    };
    let refused = naming.parse(&cx).unwrap_err();
    assert!(matches!(refused, ServiceError::Rule(_)), "{refused:?}");
    // An app viewer needs assert_user; an acting user is the viewer whatever app is named.
    let list = ListExternalPermissionsRequest {
        tenant_id: "acme".into(),
        user_id: "alice".into(),
        app_id: "crm".into(),
        ..ListExternalPermissionsRequest::default()
    };
    let refused = list.clone().parse(&cx).unwrap_err();
    assert!(matches!(refused, ServiceError::Rule(_)), "{refused:?}");
    let asserting = bound(&[Capability::Query, Capability::AssertUser]);
    let bob = UserId::parse("user_id", "bob").unwrap();
    let listed = list.parse(&parsing(&asserting, Some(&bob))).unwrap();
    assert!(matches!(&listed.of.viewer, Viewer::User(u) if *u == bob));
    // ListClients needs `*` tenants before its page is looked at.
    let clients = ListClientsRequest {
        page_size: -1,
        ..ListClientsRequest::default()
    };
    let refused = clients.parse(&cx).unwrap_err();
    assert!(matches!(refused, ServiceError::Rule(_)), "{refused:?}");
}

#[test]
fn a_page_token_is_checked_against_the_listing_it_was_minted_for() {
    use crate::service::paging::next_page_token;
    use crate::store::Page;
    let caller = bound(&[Capability::Admin]);
    let cx = parsing(&caller, None);
    let first = ListUsersRequest {
        tenant_id: "acme".into(),
        page_size: 1,
        page_token: String::new(),
    }
    .parse(&cx)
    .unwrap();
    let page = Page {
        items: vec![()],
        next: Some(UserId::parse("user_id", "alice").unwrap()),
    };
    let token = next_page_token(&SECRET, &page, &first.listing);
    let users = ListUsersRequest {
        tenant_id: "acme".into(),
        page_size: 1,
        page_token: token.clone(),
    };
    let next = users.parse(&cx).unwrap();
    assert_eq!(next.page.after.unwrap().as_str(), "alice");
    let elsewhere = ListApiUsersRequest {
        tenant_id: "acme".into(),
        page_size: 1,
        page_token: token,
    };
    let refused = elsewhere.parse(&cx).unwrap_err();
    assert!(
        matches!(&refused, ServiceError::Invalid(v) if v.field == "page_token"),
        "{refused:?}"
    );
}
