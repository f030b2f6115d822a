//! The manifest check of `manifests.rs` is itself checked: each way a rendering can drift from
//! the binary or the operations guide (a flapping probe, a policy open to every namespace, the
//! bootstrap key in a sidecar, a memory limit below the worst case, ...) is reported.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::manifests::{BOOTSTRAP_SECRET, check_rendering, dockerfile};
use super::{render, serve_from_env};

/// Sets `pointer` (made if missing) in the first object of `kind` to `value`.
fn set(docs: &mut [Value], kind: &str, pointer: &str, value: Value) {
    let doc = docs
        .iter_mut()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("a {kind} is rendered"));
    let at = pointer
        .split('/')
        .skip(1)
        .fold(doc, |v, segment| match segment.parse::<usize>() {
            Ok(i) if v.is_array() => &mut v[i],
            _ => &mut v[segment],
        });
    *at = value;
}

#[test]
fn the_check_itself_catches_drift() {
    // An unknown variable, a bad value and a missing pair are refused by the same parse.
    let env = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>()
    };
    assert!(serve_from_env(&env(&[("CONSENTRY_LISTEN", "0.0.0.0:1")])).is_ok());
    assert!(serve_from_env(&env(&[("CONSENTRY_LISTN", "0.0.0.0:1")])).is_err());
    assert!(serve_from_env(&env(&[("CONSENTRY_CACHE_MIB", "lots")])).is_err());
    assert!(serve_from_env(&env(&[("CONSENTRY_LOG_JSON", "maybe")])).is_err());
    assert!(
        serve_from_env(&env(&[("CONSENTRY_LOG_JSON", "true")]))
            .unwrap()
            .log_json
    );

    // Each way a rendering can go wrong that the guide warns of is reported.
    let image = dockerfile();
    let (base, sidecar) = (render("base"), render("overlays/sidecar"));
    assert_eq!(check_rendering("base", &base, &image), Vec::<String>::new());
    let server = "/spec/template/spec/containers/0";
    let init = "/spec/template/spec/initContainers/0";
    let app_key = "/spec/template/spec/containers/0/env/1/valueFrom/secretKeyRef/name";
    type Change = Box<dyn Fn(&mut Vec<Value>)>;
    let change = |kind: &'static str, pointer: String, value: Value| -> Change {
        Box::new(move |d: &mut Vec<Value>| set(d, kind, &pointer, value.clone()))
    };
    let cases: Vec<(&str, &Vec<Value>, Change)> = vec![
        (
            "flaps on one slow answer",
            &base,
            change(
                "Deployment",
                format!("{server}/readinessProbe/failureThreshold"),
                json!(1),
            ),
        ),
        (
            "every namespace",
            &base,
            change(
                "NetworkPolicy",
                "/spec/ingress/0/from/0/namespaceSelector".into(),
                json!({}),
            ),
        ),
        (
            "every pod of a namespace",
            &base,
            change(
                "NetworkPolicy",
                "/spec/ingress/0/from/0/podSelector".into(),
                json!({}),
            ),
        ),
        (
            "memory limit",
            &base,
            change(
                "ConfigMap",
                "/data/CONSENTRY_MAX_CONCURRENT_REQUESTS".into(),
                json!("1024"),
            ),
        ),
        (
            "no volume of the Secret consentry-signing-key",
            &base,
            change(
                "Deployment",
                "/spec/template/spec/volumes".into(),
                json!([]),
            ),
        ),
        (
            "not optional",
            &base,
            change(
                "Deployment",
                "/spec/template/spec/volumes/0/secret/optional".into(),
                json!(false),
            ),
        ),
        (
            "is not in the mounted Secret",
            &base,
            change(
                "ConfigMap",
                "/data/CONSENTRY_SIGNING_KEY_FILE".into(),
                json!("/etc/key.pem"),
            ),
        ),
        (
            "headless",
            &base,
            Box::new(|d: &mut Vec<Value>| {
                d.retain(|o| o["metadata"]["name"] != "consentry-headless")
            }),
        ),
        (
            "migration Job that may run",
            &sidecar,
            change("Job", "/spec/activeDeadlineSeconds".into(), json!(3600)),
        ),
        (
            "gets the bootstrap key",
            &sidecar,
            change(
                "ConfigMap",
                "/data/CONSENTRY_BOOTSTRAP_KEY".into(),
                json!("x".repeat(40)),
            ),
        ),
        (
            "holds the bootstrap key",
            &sidecar,
            change("Deployment", app_key.into(), json!(BOOTSTRAP_SECRET)),
        ),
        (
            "readiness would follow the database",
            &sidecar,
            change(
                "Deployment",
                format!("{init}/readinessProbe"),
                json!({"grpc": {"port": 50052}}),
            ),
        ),
    ];
    for (wanted, rendering, change) in cases {
        let mut docs = rendering.clone();
        change(&mut docs);
        let problems = check_rendering("x", &docs, &image);
        assert!(
            problems.iter().any(|p| p.contains(wanted)),
            "{wanted:?} is reported: {problems:#?}"
        );
    }
}
