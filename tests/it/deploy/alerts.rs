//! The alert rules: the guide's promtool commands run as written (the rules are well-formed and
//! their unit tests pass), the guide's table of alerts is the rule file's, and every rule asks
//! about metrics that consentry records.

use std::collections::BTreeSet;
use std::path::Path;

use consentry::metrics::{Kind, METRICS};
use serde_json::Value;

use super::{OPERATIONS, ROOT, blocks, promtool, yaml_documents};

/// The rule file's alerts, as (name, rule).
fn rules() -> Vec<(String, Value)> {
    let text =
        std::fs::read(Path::new(ROOT).join("deploy/prometheus/consentry-rules.yaml")).unwrap();
    let file = yaml_documents(&text).remove(0);
    file["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().iter())
        .map(|r| (r["alert"].as_str().unwrap().to_owned(), r.clone()))
        .collect()
}

#[test]
fn the_guides_promtool_commands_pass() {
    let _ = promtool();
    let commands: Vec<String> = blocks("## Metrics and alerts", "")
        .iter()
        .flat_map(|b| b.lines().map(str::to_owned).collect::<Vec<_>>())
        .filter(|l| l.starts_with("promtool "))
        .collect();
    assert!(
        commands
            .iter()
            .any(|c| c.starts_with("promtool check rules "))
            && commands
                .iter()
                .any(|c| c.starts_with("promtool test rules ")),
        "the guide checks and tests the rules: {commands:?}"
    );
    for command in commands {
        let out = std::process::Command::new("bash")
            .args(["-c", &command])
            .current_dir(ROOT)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{command}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn the_guide_lists_the_rule_files_alerts() {
    let section = OPERATIONS
        .split_once("\n## Metrics and alerts\n")
        .unwrap()
        .1;
    let listed: BTreeSet<(String, String)> = section
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let name = cells
                .get(1)?
                .strip_prefix("`Consentry")?
                .strip_suffix('`')?;
            Some((format!("Consentry{name}"), cells.get(3)?.to_string()))
        })
        .collect();
    let written: BTreeSet<(String, String)> = rules()
        .into_iter()
        .map(|(name, rule)| {
            (
                name,
                rule["labels"]["severity"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        listed, written,
        "the guide's alerts and severities are the rule file's"
    );
}

#[test]
fn every_rule_asks_about_metrics_consentry_records() {
    let known = |name: &str| {
        METRICS.iter().any(|(m, kind, _)| {
            *m == name
                || (*kind == Kind::Histogram
                    && ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|s| name.strip_suffix(s) == Some(m)))
        })
    };
    for (alert, rule) in rules() {
        let expr = rule["expr"].as_str().unwrap();
        let names: Vec<&str> = expr
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("consentry_"))
            .collect();
        assert!(!names.is_empty(), "{alert} asks about no consentry metric");
        for name in names {
            assert!(
                known(name),
                "{alert} asks about {name}, which consentry does not record"
            );
        }
    }
    // The guide's metrics table names only metrics that exist, and the README names them all.
    let table: Vec<String> = OPERATIONS
        .lines()
        .filter(|l| l.starts_with("| `consentry_"))
        .flat_map(|l| {
            // The first cell, without label lists (`{rpc,code}`).
            let mut cell = String::new();
            let mut depth = 0;
            for c in l.split('|').nth(1).unwrap().chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ if depth == 0 => cell.push(c),
                    _ => {}
                }
            }
            cell.split(',')
                .map(|m| m.trim().trim_matches('`').to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(table.len() >= 10, "{table:?}");
    for name in table {
        assert!(
            known(&name),
            "docs/operations.md lists {name}, which consentry does not record"
        );
    }
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap();
    for (name, _, _) in METRICS {
        assert!(readme.contains(name), "README.md does not name {name}");
    }
}
