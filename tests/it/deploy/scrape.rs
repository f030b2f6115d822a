//! A real scrape of the binary: every metric family has its `# HELP` line, `promtool check
//! metrics` finds nothing to say, every metric consentry describes is there, and the series the
//! alert rules' tests feed promtool have the names, labels and label values of the real ones.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use consentry::metrics::METRICS;
use consentry::proto::permission_service_client::PermissionServiceClient;
use consentry::proto::{CheckAccessRequest, PutTenantRequest};
use consentry::service::observe::code_name;
use tonic::Code;

use super::{ROOT, promtool, yaml_documents};
use crate::support::calls::Who;
use crate::support::db::TestDb;
use crate::support::server::{BinaryServer, connect, scrape};

/// Metrics that a server without TLS, or without read replicas, never records.
const TLS_ONLY: &[&str] = &[
    "consentry_tls_handshake_failures_total",
    "consentry_replica_lag_revisions",
];

/// A series: its name and labels.
type Series = (String, BTreeMap<String, String>);

/// `name{k="v", ...}` (the labels optional), as a series.
fn series(text: &str) -> Series {
    let text = text.trim();
    let Some((name, labels)) = text.split_once('{') else {
        return (text.to_owned(), BTreeMap::new());
    };
    let labels = labels
        .trim_end_matches('}')
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap();
            (k.trim().to_owned(), v.trim().trim_matches('"').to_owned())
        })
        .collect();
    (name.to_owned(), labels)
}

/// The body of a scrape, without the HTTP head.
fn body(response: &str) -> String {
    response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_real_scrape_is_described_lint_free_and_shaped_like_the_rule_tests() {
    let db = TestDb::postgres().await;
    let server = BinaryServer::start(&db.url, &["--metrics-listen", "127.0.0.1:0"]).await;
    let metrics = server.metrics.expect("the binary says where metrics are");
    // A decision, a write and a refusal, so that the per-call metrics exist.
    let channel = connect(server.addr).await;
    let check = CheckAccessRequest {
        tenant_id: "acme".into(),
        app_id: "app".into(),
        user_id: "u".into(),
        ..Default::default()
    };
    PermissionServiceClient::new(channel.clone())
        .check_access(Who::boot().r(check.clone()))
        .await
        .unwrap();
    server
        .admin()
        .await
        .put_tenant(Who::boot().r(PutTenantRequest {
            tenant_id: "acme".into(),
            environment: "production".into(),
            whitelisting_enabled: false,
        }))
        .await
        .unwrap();
    let refused = PermissionServiceClient::new(channel)
        .check_access(Who::nobody().r(check))
        .await;
    assert_eq!(refused.unwrap_err().code(), Code::Unauthenticated);

    // Every described metric shows (the pool's gauge after its first report).
    let wanted: Vec<&str> = METRICS
        .iter()
        .map(|(name, _, _)| *name)
        .filter(|n| !TLS_ONLY.contains(n))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    let text = loop {
        let text = body(&scrape(metrics).await);
        let missing: Vec<&&str> = wanted
            .iter()
            .filter(|n| !text.contains(&format!("# TYPE {n} ")))
            .collect();
        if missing.is_empty() {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "never scraped {missing:?}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // Each family has its help text.
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split_whitespace().next().unwrap();
            assert!(
                text.contains(&format!("# HELP {name} ")),
                "{name} has no # HELP line"
            );
        }
    }
    // promtool finds nothing to say.
    let mut lint = promtool()
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    lint.stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = lint.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics:\n{said}"
    );

    // The rule tests' series: a real name, the real label names (beside the scrape's own
    // `instance` and `job`), and label values the real series carry.
    let scraped: Vec<Series> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| series(l.rsplit_once(' ').unwrap().0))
        .collect();
    let codes: BTreeSet<&str> = (0..17).map(|c| code_name(Code::from(c))).collect();
    let tests =
        std::fs::read(Path::new(ROOT).join("deploy/prometheus/consentry-rules.test.yaml")).unwrap();
    let tests = yaml_documents(&tests).remove(0);
    let mut fed = 0;
    for input in tests["tests"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["input_series"].as_array().unwrap().iter())
    {
        fed += 1;
        let (name, mut labels) = series(input["series"].as_str().unwrap());
        for own in ["instance", "job"] {
            assert!(labels.remove(own).is_some(), "{name}: a scrape adds {own}");
        }
        let real: Vec<&BTreeMap<String, String>> = scraped
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, l)| l)
            .collect();
        assert!(
            !real.is_empty(),
            "the rule tests feed {name}, which a scrape does not have"
        );
        let keys: BTreeSet<&String> = labels.keys().collect();
        assert!(
            real.iter()
                .any(|l| l.keys().collect::<BTreeSet<_>>() == keys),
            "{name}{labels:?}: the real series are labelled {:?}",
            real.iter()
                .map(|l| l.keys().collect::<Vec<_>>())
                .collect::<BTreeSet<_>>()
        );
        for (key, value) in &labels {
            let known = match key.as_str() {
                "code" => codes.contains(value.as_str()),
                _ => real.iter().any(|l| l.get(key) == Some(value)),
            };
            assert!(
                known,
                "{name}: {key}={value:?} is no value the real series carry"
            );
        }
    }
    assert!(fed >= 20, "the rule tests feed series");
    let _ = server.terminate().await;
    db.cleanup().await;
}
