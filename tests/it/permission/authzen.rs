//! The OpenID AuthZEN Authorization API 1.0 end to end (docs/rules.md §10.5), over a real HTTP
//! client (hyper's, HTTP/1.1 and h2c): the examples of the specification's evaluation,
//! evaluations, search and metadata sections translated to consentry's subject, resource and
//! action, each answered as CheckAccess answers the same question; members a client may send
//! that consentry does not use answered, not refused; every bad input a 4xx naming the member,
//! never a 500; `X-Request-ID` echoed; the listener's metrics; an outage a 503.

use serde_json::{Value, json};

use super::*;
use crate::support::db::{backend_tests, postgres_tests};
use crate::support::http::{self, Answer, Version};
use crate::support::proxy::Proxy;
use crate::support::server::eventually;

backend_tests!(
    an_evaluation_is_answered_as_check_access_answers_it,
    the_specifications_evaluations_examples_in_consentrys_terms,
    searches_list_actions_and_the_top_most_reachable_paths_paged,
    the_metadata_is_built_from_the_issuer_url_never_from_host,
    bad_input_is_a_4xx_naming_the_member_never_a_500,
    both_http_versions_and_request_ids_and_metrics,
);

postgres_tests!(an_outage_is_a_503);

const ISSUER: &str = "https://pdp.example.com";

/// A server with AuthZEN on, the `acme` world, and a `query` client bounded to `acme`.
struct Pdp {
    server: TestServer,
    api: Api,
    key: String,
}

impl Pdp {
    async fn start(db: &TestDb) -> Pdp {
        Self::start_with(db, |_| {}).await
    }

    async fn start_with(
        db: &TestDb,
        adjust: impl FnOnce(&mut consentry::config::ServeConfig),
    ) -> Pdp {
        let mut cfg = config(db);
        cfg.http_listen = Some(([127, 0, 0, 1], 0).into());
        cfg.authzen_issuer_url = Some(ISSUER.to_owned());
        cfg.metrics_listen = Some(([127, 0, 0, 1], 0).into());
        adjust(&mut cfg);
        let (server, api) = acme_server_with(cfg).await;
        let key = api
            .client("pep", &["acme"], &[consentry::proto::Capability::Query])
            .await;
        Pdp { server, api, key }
    }

    fn addr(&self) -> std::net::SocketAddr {
        self.server.http_addr.expect("--http-listen")
    }

    async fn post(&self, path: &str, body: &Value) -> Answer {
        http::post(self.addr(), path, Some(&self.key), body, &[]).await
    }

    async fn evaluate(&self, body: &Value) -> Value {
        let answer = self.post("/access/v1/evaluation", body).await;
        assert_eq!(answer.status, 200, "{body}: {}", answer.text);
        answer.json
    }

    /// The reason CheckAccess gives `q`, as a token (`NO_CONSENT`).
    async fn reason(&self, q: CheckAccessRequest) -> String {
        let reason = self.api.decide(q).await.reason();
        reason
            .as_str_name()
            .trim_start_matches("REASON_")
            .to_owned()
    }
}

/// `user` through crm in acme, asking `action` at `path`.
fn ask(user: &str, action: &str, path: &str) -> Value {
    json!({
        "subject": {"type": "user", "id": user},
        "resource": {"type": "path", "id": path, "properties": {"tenant_id": "acme", "app_id": "crm"}},
        "action": {"name": action}
    })
}

/// The decision and reason of an evaluation's answer.
#[track_caller]
fn decision(answer: &Value) -> (bool, String) {
    let decided = answer["decision"].as_bool().expect("a decision");
    let reason = answer["context"]["reason"]
        .as_str()
        .expect("a reason")
        .to_owned();
    assert!(answer["context"]["checked_at"].is_string(), "{answer}");
    assert!(
        answer["context"]["reason_admin"]["message"].is_string(),
        "{answer}"
    );
    (decided, reason)
}

async fn an_evaluation_is_answered_as_check_access_answers_it(db: &TestDb) {
    let pdp = Pdp::start(db).await;
    for (user, action, path) in [
        ("dave", "EDIT_ITEMS", "/hr/team/docs"),
        ("dave", "READ", "/hr"),
        ("dave", "MANAGE", "/hr"),
        ("dave", "READ", "/finance"),
        ("bob", "READ", "/hr"),
        ("erin", "READ", "/hr"),
        ("alice", "FULL_CONTROL", "/hr/x"),
    ] {
        let answer = pdp.evaluate(&ask(user, action, path)).await;
        let (decided, reason) = decision(&answer);
        let mut q = may(user, action, path);
        q.explain = false;
        let expected = pdp.reason(q).await;
        assert_eq!(reason, expected, "{user} {action} {path}");
        assert_eq!(decided, expected == "ALLOWED");
    }
    // An app-only question: the subject is the app.
    let app_only = json!({
        "subject": {"type": "app", "id": "crm"},
        "resource": {"type": "path", "id": "/hr", "properties": {"tenant_id": "acme"}},
        "action": {"name": "READ"}
    });
    assert_eq!(decision(&pdp.evaluate(&app_only).await).1, "USER_REQUIRED");
    // A scope as the action.
    let scope = json!({
        "subject": {"type": "user", "id": "dave"},
        "resource": {"type": "path", "id": "/", "properties": {"tenant_id": "acme", "app_id": "crm"}},
        "action": {"name": "scope", "properties": {"scope": "mail:send"}}
    });
    assert_eq!(decision(&pdp.evaluate(&scope).await).1, "SCOPE_NOT_GRANTED");
    // On behalf of another user, through the context.
    let mut behalf = ask("bob", "WRITE", "/hr/payroll");
    behalf["context"] = json!({"on_behalf_of": "dave"});
    let mut q = may("bob", "WRITE", "/hr/payroll");
    q.on_behalf_of = "dave".into();
    q.explain = false;
    assert_eq!(
        decision(&pdp.evaluate(&behalf).await).1,
        pdp.reason(q).await
    );
    // A token makes the answer at least as fresh as a write.
    pdp.api.put_user("acme", "erin", &[], None).await;
    let written = pdp
        .api
        .grant_right("acme", "erin", "/hr", Right::Read)
        .await;
    let mut fresh = ask("erin", "READ", "/hr");
    fresh["context"] = json!({"consistency": {"at_least_as_fresh": written}});
    assert_eq!(
        decision(&pdp.evaluate(&fresh).await),
        (true, "ALLOWED".to_owned())
    );
    pdp.server.stop().await;
}

async fn the_specifications_evaluations_examples_in_consentrys_terms(db: &TestDb) {
    let pdp = Pdp::start(db).await;
    let crm = json!({"tenant_id": "acme", "app_id": "crm"});
    let resource = |path: &str| json!({"type": "path", "id": path, "properties": crm});

    // The specification's example 6.1.1 (and 10.1.4): an evaluation with an action's properties and a context that
    // consentry does not use: answered.
    let body = json!({
        "subject": {"type": "user", "id": "dave", "properties": {"department": "Sales"}},
        "resource": resource("/hr/team"),
        "action": {"name": "READ", "properties": {"method": "GET"}},
        "context": {"time": "1985-10-26T01:22-07:00"}
    });
    assert!(decision(&pdp.evaluate(&body).await).0);

    // The specification's 7.1: three requests, no defaults.
    let item = |path: &str| {
        json!({
            "subject": {"type": "user", "id": "dave"},
            "action": {"name": "READ"},
            "resource": resource(path),
            "context": {"time": "2024-05-31T15:22-07:00"}
        })
    };
    let body = json!({"evaluations": [item("/hr"), item("/finance"), item("/hr/team")]});
    let answer = pdp.post("/access/v1/evaluations", &body).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let decisions: Vec<bool> = answer.json["evaluations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| decision(e).0)
        .collect();
    assert_eq!(decisions, [true, false, true]);
    assert!(
        answer.json.get("decision").is_none(),
        "no top-level decision with items"
    );

    // The specification's 7.1.1: the subject and context as defaults; the third item overrides the action.
    let body = json!({
        "subject": {"type": "user", "id": "dave"},
        "context": {"time": "2024-05-31T15:22-07:00"},
        "action": {"name": "READ"},
        "evaluations": [
            {"resource": resource("/hr")},
            {"resource": resource("/hr/team")},
            {"action": {"name": "MANAGE"}, "resource": resource("/hr/team")}
        ]
    });
    let answer = pdp.post("/access/v1/evaluations", &body).await;
    let items = answer.json["evaluations"].as_array().unwrap();
    assert_eq!(
        items.iter().map(decision).collect::<Vec<_>>(),
        [
            (true, "ALLOWED".to_owned()),
            (true, "ALLOWED".to_owned()),
            (false, "APP_PERMISSION_INSUFFICIENT".to_owned())
        ]
    );
    // All at one revision.
    let revisions: Vec<&Value> = items.iter().map(|e| &e["context"]["checked_at"]).collect();
    assert!(revisions.windows(2).all(|w| w[0] == w[1]), "{revisions:?}");

    // The specification's 7.1.2.1.1: "read" on three documents (allowed, denied, allowed) under each semantic.
    for (semantic, expected) in [
        ("execute_all", vec![true, false, true]),
        ("deny_on_first_deny", vec![true, false]),
        ("permit_on_first_permit", vec![true]),
    ] {
        let body = json!({
            "subject": {"type": "user", "id": "dave"},
            "action": {"name": "READ"},
            "options": {"evaluations_semantic": semantic, "another_option": "value"},
            "evaluations": [
                {"resource": resource("/hr/1")},
                {"resource": resource("/finance/2")},
                {"resource": resource("/hr/3")}
            ]
        });
        let answer = pdp.post("/access/v1/evaluations", &body).await;
        let got: Vec<bool> = answer.json["evaluations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| decision(e).0)
            .collect();
        assert_eq!(got, expected, "{semantic}");
    }

    // The specification's 7.2.1: an item that fails on its own is denied with the error in its context.
    let body = json!({
        "subject": {"type": "user", "id": "dave"},
        "action": {"name": "READ"},
        "evaluations": [
            {"resource": resource("/hr")},
            {"resource": {"type": "path", "id": "/", "properties": {"tenant_id": "globex", "app_id": "crm"}}}
        ]
    });
    let answer = pdp.post("/access/v1/evaluations", &body).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let second = &answer.json["evaluations"][1];
    assert_eq!(second["decision"], json!(false));
    assert_eq!(second["context"]["error"]["status"], json!(403));
    assert!(second["context"]["error"]["message"].is_string());

    // The specification's 7.1: without items the request is one evaluation, answered as one.
    let answer = pdp
        .post("/access/v1/evaluations", &ask("dave", "READ", "/hr"))
        .await;
    assert_eq!(decision(&answer.json), (true, "ALLOWED".to_owned()));
    pdp.server.stop().await;
}

async fn searches_list_actions_and_the_top_most_reachable_paths_paged(db: &TestDb) {
    let pdp = Pdp::start(db).await;
    pdp.api.put_user("acme", "erin", &[], None).await;
    for path in ["/hr/b", "/hr/a", "/hr/c", "/hr/a/deeper"] {
        pdp.api.grant_right("acme", "erin", path, Right::Read).await;
    }
    let crm = json!({"tenant_id": "acme", "app_id": "crm"});

    // The specification's 8.6.2: the actions dave may take at /hr/team, by the names a check accepts.
    let body = json!({
        "subject": {"type": "user", "id": "dave"},
        "resource": {"type": "path", "id": "/hr/team", "properties": crm},
        "context": {"time": "2024-10-26T01:22-07:00"}
    });
    let answer = pdp.post("/access/v1/search/action", &body).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let names: Vec<&str> = answer.json["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert!(names.starts_with(&["READ", "WRITE"]), "{names:?}");
    assert!(
        names.contains(&"EDIT_ITEMS") && !names.contains(&"MANAGE"),
        "{names:?}"
    );
    // Each listed action checks ALLOWED there.
    for name in &names {
        assert!(
            decision(&pdp.evaluate(&ask("dave", name, "/hr/team")).await).0,
            "{name}"
        );
    }
    // A subject the check refuses may take none, with the decision in the context.
    let mut refused = body.clone();
    refused["resource"]["properties"]["app_id"] = json!("nope");
    let answer = pdp.post("/access/v1/search/action", &refused).await;
    assert_eq!(answer.json["results"], json!([]));
    assert_eq!(answer.json["context"]["reason"], json!("UNKNOWN_APP"));

    // The specification's 8.5.2 and 8.2.3: the resources erin may read, paged two at a time; the resource has
    // a type and no id (the tenancy).
    let body = json!({
        "subject": {"type": "user", "id": "erin"},
        "action": {"name": "READ"},
        "resource": {"type": "path", "properties": crm},
        "page": {"limit": 2}
    });
    let first = pdp.post("/access/v1/search/resource", &body).await;
    assert_eq!(first.status, 200, "{}", first.text);
    let ids = |a: &Answer| -> Vec<String> {
        a.json["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                assert_eq!(r["type"], json!("path"));
                r["id"].as_str().unwrap().to_owned()
            })
            .collect()
    };
    assert_eq!(ids(&first), ["/hr/a", "/hr/b"]);
    assert_eq!(first.json["page"]["count"], json!(2));
    assert_eq!(first.json["page"]["total"], json!(3));
    let token = first.json["page"]["next_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!token.is_empty());
    // The next page repeats the request with the token (its limit may be left out).
    let mut next = body.clone();
    next["page"] = json!({"token": token});
    let second = pdp.post("/access/v1/search/resource", &next).await;
    assert_eq!(ids(&second), ["/hr/c"]);
    assert_eq!(second.json["page"]["next_token"], json!(""));
    // A token used with another query is refused.
    let mut other = next.clone();
    other["action"] = json!({"name": "WRITE"});
    let answer = pdp.post("/access/v1/search/resource", &other).await;
    assert_eq!(answer.status, 400, "{}", answer.text);
    assert!(answer.text.contains("page.token"), "{}", answer.text);
    // Under a resource: only what lies there. Every path listed checks ALLOWED.
    let mut under = body.clone();
    under["resource"]["id"] = json!("/hr/a");
    under["page"] = json!({});
    let answer = pdp.post("/access/v1/search/resource", &under).await;
    assert_eq!(ids(&answer), ["/hr/a"]);
    for path in ["/hr/a", "/hr/b", "/hr/c", "/hr/a/deeper/x"] {
        assert!(
            decision(&pdp.evaluate(&ask("erin", "READ", path)).await).0,
            "{path}"
        );
    }
    assert!(!decision(&pdp.evaluate(&ask("erin", "READ", "/hr/d")).await).0);
    pdp.server.stop().await;
}

async fn the_metadata_is_built_from_the_issuer_url_never_from_host(db: &TestDb) {
    let pdp = Pdp::start(db).await;
    let answer = http::get(
        pdp.addr(),
        "/.well-known/authzen-configuration",
        "evil.example",
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    assert_eq!(
        answer.json,
        json!({
            "policy_decision_point": ISSUER,
            "access_evaluation_endpoint": format!("{ISSUER}/access/v1/evaluation"),
            "access_evaluations_endpoint": format!("{ISSUER}/access/v1/evaluations"),
            "search_action_endpoint": format!("{ISSUER}/access/v1/search/action"),
            "search_resource_endpoint": format!("{ISSUER}/access/v1/search/resource"),
        })
    );
    assert!(!answer.text.contains("evil"));
    pdp.server.stop().await;

    // An issuer with a path: the well-known segment goes before it.
    let mut cfg = config(db);
    cfg.http_listen = Some(([127, 0, 0, 1], 0).into());
    cfg.authzen_issuer_url = Some("https://pdp.example.com/tenant1/".to_owned());
    let server = TestServer::start_with(cfg).await;
    let addr = server.http_addr.unwrap();
    let answer = http::get(addr, "/.well-known/authzen-configuration/tenant1", "x").await;
    assert_eq!(
        answer.json["policy_decision_point"],
        json!("https://pdp.example.com/tenant1")
    );
    let plain = http::get(addr, "/.well-known/authzen-configuration", "x").await;
    assert_eq!(plain.status, 404);
    // The endpoints it names answer under its path too (here: no key, so 401, not 404).
    let under = http::post(addr, "/tenant1/access/v1/evaluation", None, &json!({}), &[]).await;
    assert_eq!(under.status, 401, "{}", under.text);
    // HEAD: the headers, no body.
    let request = ::http::Request::head("/.well-known/authzen-configuration/tenant1")
        .header("host", "x")
        .body(http_body_util::Full::new(hyper::body::Bytes::new()))
        .unwrap();
    let head = http::send(addr, Version::H2c, request).await;
    assert_eq!(head.status, 200);
    assert!(head.text.is_empty(), "{}", head.text);
    server.stop().await;
    // Without an identifier there is no metadata.
    let mut cfg = config(db);
    cfg.http_listen = Some(([127, 0, 0, 1], 0).into());
    let server = TestServer::start_with(cfg).await;
    let answer = http::get(
        server.http_addr.unwrap(),
        "/.well-known/authzen-configuration",
        "x",
    )
    .await;
    assert_eq!(answer.status, 404);
    server.stop().await;
}

async fn bad_input_is_a_4xx_naming_the_member_never_a_500(db: &TestDb) {
    let pdp = Pdp::start(db).await;
    let path = "/access/v1/evaluation";
    let good = ask("dave", "READ", "/hr");
    let raw = |body: &str| body.as_bytes().to_vec();
    let post = |body: Vec<u8>, headers: &'static [(&'static str, &'static str)]| {
        let addr = pdp.addr();
        let key = pdp.key.clone();
        async move { http::post_raw(addr, Version::H1, path, Some(&key), body, headers).await }
    };
    let mut cases: Vec<(&str, Answer, u16, &str)> = vec![
        (
            "malformed JSON",
            post(raw("{\"subject\":"), &[]).await,
            400,
            "body",
        ),
        ("not an object", post(raw("[1,2]"), &[]).await, 400, "body"),
        (
            "a wrong type",
            post(
                good.to_string()
                    .replace(r#""type":"user""#, r#""type":7"#)
                    .into_bytes(),
                &[],
            )
            .await,
            400,
            "subject.type",
        ),
        (
            "a missing member",
            post(
                good.to_string()
                    .replace("\"action\"", "\"actions\"")
                    .into_bytes(),
                &[],
            )
            .await,
            400,
            "action",
        ),
        (
            "another content type",
            post(
                good.to_string().into_bytes(),
                &[("content-type", "text/plain")],
            )
            .await,
            415,
            "application/json",
        ),
    ];
    // Over HTTP/2, where the answer may come before the whole body was sent.
    cases.push((
        "a body over the limit",
        http::post_raw(
            pdp.addr(),
            Version::H2c,
            path,
            Some(&pdp.key),
            vec![b' '; 5 * 1024 * 1024],
            &[],
        )
        .await,
        413,
        "--max-message-bytes",
    ));
    let mut unknown = good.clone();
    unknown["options"] = json!({"evaluations_semantic": "whatever"});
    unknown["evaluations"] = json!([{}]);
    cases.push((
        "an unknown evaluations_semantic",
        pdp.post("/access/v1/evaluations", &unknown).await,
        400,
        "options.evaluations_semantic",
    ));
    let many = format!("[{}{{}}]", "{},".repeat(8_000));
    cases.push((
        "more JSON values than a batch could need",
        http::post_raw(
            pdp.addr(),
            Version::H2c,
            path,
            Some(&pdp.key),
            many.into_bytes(),
            &[],
        )
        .await,
        413,
        "JSON values",
    ));
    let mut bad_path = good.clone();
    bad_path["resource"]["id"] = json!("/hr/../finance");
    cases.push((
        "a path with '..'",
        pdp.post(path, &bad_path).await,
        400,
        "resource.id",
    ));
    cases.push((
        "no key",
        http::post(pdp.addr(), path, None, &good, &[]).await,
        401,
        "authorization",
    ));
    let mut elsewhere = good.clone();
    elsewhere["resource"]["properties"]["tenant_id"] = json!("globex");
    cases.push((
        "a tenant outside the bounds",
        pdp.post(path, &elsewhere).await,
        403,
        "globex",
    ));
    cases.push((
        "an unknown path",
        pdp.post("/access/v1/search/subject", &good).await,
        404,
        "no such endpoint",
    ));
    cases.push((
        "GET on an endpoint",
        http::get(pdp.addr(), path, "x").await,
        405,
        "POST",
    ));
    for (what, answer, status, needle) in cases {
        assert_eq!(answer.status, status, "{what}: {}", answer.text);
        assert_eq!(
            answer.json["error"]["status"],
            json!(status),
            "{what}: {}",
            answer.text
        );
        let message = answer.json["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{what}: {message}");
        assert!(message.len() < 1024, "{what}: a short message");
        if status == 401 {
            assert_eq!(answer.header("www-authenticate"), Some("Bearer"));
        }
    }
    pdp.server.stop().await;
}

async fn both_http_versions_and_request_ids_and_metrics(db: &TestDb) {
    let pdp = Pdp::start(db).await;
    let body = ask("dave", "READ", "/hr").to_string().into_bytes();
    let id = [("x-request-id", "bfe9eb29-ab87-4ca3-be83-a1d5d8305716")];
    for version in [Version::H1, Version::H2c] {
        let answer = http::post_raw(
            pdp.addr(),
            version,
            "/access/v1/evaluation",
            Some(&pdp.key),
            body.clone(),
            &id,
        )
        .await;
        assert_eq!(answer.status, 200, "{version:?}: {}", answer.text);
        assert!(decision(&answer.json).0);
        assert_eq!(answer.header("x-request-id"), Some(id[0].1), "{version:?}");
    }
    // Without an id, one is made and returned; errors carry it too.
    let answer = http::post(pdp.addr(), "/access/v1/evaluation", None, &json!({}), &[]).await;
    assert!(
        answer
            .header("x-request-id")
            .is_some_and(|v| v.starts_with("cs-"))
    );
    let metrics = crate::support::server::scrape(pdp.server.metrics_addr.unwrap()).await;
    let counted = |rpc: &str, code: &str| {
        metrics.lines().any(|l| {
            l.starts_with("consentry_requests_total")
                && l.contains(&format!("rpc=\"{rpc}\""))
                && l.contains(&format!("code=\"{code}\""))
        })
    };
    assert!(counted("authzen.evaluation", "OK"), "{metrics}");
    assert!(
        counted("authzen.evaluation", "UNAUTHENTICATED"),
        "{metrics}"
    );
    pdp.server.stop().await;
}

async fn an_outage_is_a_503(db: &TestDb) {
    let proxy = Proxy::start(super::outage::postgres_addr()).await;
    let pdp = Pdp::start_with(db, |cfg| {
        cfg.db.database_url = proxy.url(&db.url);
        cfg.max_staleness = Duration::from_secs(1);
    })
    .await;
    let hit = ask("dave", "READ", "/hr");
    assert!(decision(&pdp.evaluate(&hit).await).0);
    proxy.cut();
    // Past the bound: 503, never a decision.
    eventually(Duration::from_secs(10), || async {
        pdp.post("/access/v1/evaluation", &hit).await.status == 503
    })
    .await;
    let answer = pdp.post("/access/v1/evaluation", &hit).await;
    assert_eq!(answer.status, 503);
    assert!(answer.json.get("decision").is_none(), "{}", answer.text);
    proxy.restore().await;
    eventually(Duration::from_secs(10), || async {
        pdp.post("/access/v1/evaluation", &hit).await.status == 200
    })
    .await;
    pdp.server.stop().await;
}
