//! The manifests agree with the binary: each consentry container's environment is parsed by
//! the real command line (`Cli`), so an unknown variable, a bad value, a port, probe, memory
//! limit or grace period that does not match the configuration it describes fails here; the
//! network policy, the Services, the Secrets each container gets and the example PodMonitor are
//! held to what the operations guide says of them. The Dockerfile's build step is the README's.

use std::collections::BTreeMap;
use std::path::Path;

use consentry::config::LIVENESS_SERVICE;
use consentry::startup::CLOSE_TIMEOUT;
use serde_json::{Value, json};

use super::{
    ROOT, container_env, copy_of_the_tree, kustomizations, of_kind, render, render_at,
    serve_from_env, serving_containers, yaml_documents,
};
use crate::support::dir::TempDir;

/// Where the Dockerfile installs the binary.
const BINARY: &str = "/usr/local/bin/consentry";
/// What the process needs beyond the cache budget and the messages of the calls in flight, at
/// most (docs/operations.md measures 27 MiB idle; this leaves room for connections and the
/// allocator).
const OVERHEAD_MIB: u64 = 64;
/// The Secret that holds the context token signing key, mounted (optionally) by every server.
const SIGNING_SECRET: &str = "consentry-signing-key";
/// The Secret whose key creates the all-powerful `bootstrap` client.
pub(super) const BOOTSTRAP_SECRET: &str = "consentry-bootstrap";
/// Time to connect and load once the migration Job is done, for a startup probe that waits for it.
const LOAD_MARGIN_SECS: u64 = 60;
/// Time a startup probe that asks only `liveness` leaves the process to start.
const PROCESS_START_SECS: u64 = 10;
/// A replica that turns NOT_SERVING leaves its Service within this (docs/operations.md).
const WITHDRAWN_WITHIN_SECS: u64 = 10;

/// The image's environment and exposed ports, from the Dockerfile.
pub(super) struct Dockerfile {
    env: BTreeMap<String, String>,
    expose: Vec<u16>,
    entrypoint: Vec<String>,
    runs: Vec<String>,
    user: String,
}

pub(super) fn dockerfile() -> Dockerfile {
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
    let (env, missing) = container_env(docs, container, &image.env);
    for var in missing {
        say(format!("{var} has no value"));
    }
    let sidecar = container["restartPolicy"] == "Always";
    if sidecar && env.contains_key("CONSENTRY_BOOTSTRAP_KEY") {
        say("a sidecar gets the bootstrap key, which can do everything everywhere; its application asks with a key of its own".into());
    }
    let config = match serve_from_env(&env) {
        Ok(config) => config,
        Err(e) => return say(e),
    };
    // Files come from mounted Secrets (they cannot be read here).
    let mounts: Vec<(&str, &str)> = container["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["subPath"].is_null())
        .filter_map(|m| Some((m["name"].as_str()?, m["mountPath"].as_str()?)))
        .collect();
    for file in [&config.tls_cert, &config.tls_key, &config.tls_client_ca]
        .into_iter()
        .flatten()
    {
        if !mounts.iter().any(|(_, m)| file.starts_with(m)) {
            say(format!("{} is on no mounted volume", file.display()));
        }
    }
    // The signing key Secret is mounted, optionally and whole, so that adding it (and pointing
    // --signing-key-file at it) needs no other change, and a rotation reaches the file.
    let signing = pod["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["secret"]["secretName"] == SIGNING_SECRET);
    let signing_mount = match signing {
        None => {
            say(format!(
                "the pod has no volume of the Secret {SIGNING_SECRET}"
            ));
            None
        }
        Some(volume) => {
            if volume["secret"]["optional"] != true {
                say(format!(
                    "the Secret {SIGNING_SECRET} is not optional: pods would not start until it exists"
                ));
            }
            let mount = mounts
                .iter()
                .find(|(n, _)| volume["name"].as_str() == Some(n))
                .map(|(_, m)| *m);
            if mount.is_none() {
                say(format!(
                    "does not mount the Secret {SIGNING_SECRET} as a directory (a subPath is never updated)"
                ));
            }
            mount
        }
    };
    if let Some(file) = &config.signing_key_file
        && !signing_mount.is_some_and(|m| file.starts_with(m))
    {
        say(format!(
            "--signing-key-file {} is not in the mounted Secret {SIGNING_SECRET}",
            file.display()
        ));
    }
    let mut checked = config.clone();
    (checked.tls_cert, checked.tls_key, checked.tls_client_ca) = (None, None, None);
    checked.signing_key_file = None;
    if let Err(e) = checked.validate() {
        say(e.to_string());
    }
    if config.migrate {
        say("migrates at start: serving roles should not hold DDL rights".into());
    }
    let jobs = of_kind(docs, "Job");
    if jobs.is_empty() {
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
    // A probe's numbers, with Kubernetes' defaults.
    let num = |probe: &str, field: &str| {
        let default = match field {
            "periodSeconds" => 10,
            "timeoutSeconds" | "successThreshold" => 1,
            "failureThreshold" => 3,
            _ => 0,
        };
        container[probe][field].as_u64().unwrap_or(default)
    };
    // Readiness does not flap on one slow answer, and still withdraws a NOT_SERVING replica soon.
    if !sidecar {
        let (period, timeout, failures) = (
            num("readinessProbe", "periodSeconds"),
            num("readinessProbe", "timeoutSeconds"),
            num("readinessProbe", "failureThreshold"),
        );
        if failures < 2 || timeout < 2 {
            say(format!(
                "readiness flaps on one slow answer (failureThreshold {failures}, timeoutSeconds {timeout})"
            ));
        }
        if failures * period + timeout > WITHDRAWN_WITHIN_SECS {
            say(format!(
                "readiness takes {failures} x {period} s + {timeout} s to withdraw a NOT_SERVING replica, more than {WITHDRAWN_WITHIN_SECS} s"
            ));
        }
    }
    // Startup: a probe that asks the server's own health waits for the migration Job, which may
    // run until its deadline; one that asks `liveness` waits only for the process.
    let window = num("startupProbe", "initialDelaySeconds")
        + num("startupProbe", "periodSeconds") * num("startupProbe", "failureThreshold");
    if container["startupProbe"]["grpc"]["service"]
        .as_str()
        .unwrap_or("")
        .is_empty()
    {
        let deadlines: Vec<Option<u64>> = jobs
            .iter()
            .map(|j| j["spec"]["activeDeadlineSeconds"].as_u64())
            .collect();
        match deadlines.iter().copied().collect::<Option<Vec<u64>>>() {
            None => say(
                "the migration Job has no activeDeadlineSeconds, so no startup window covers it"
                    .into(),
            ),
            Some(deadlines) => {
                let job = deadlines.into_iter().max().unwrap_or(0);
                if window < job + LOAD_MARGIN_SECS {
                    say(format!(
                        "the startup probe gives up after {window} s, but waits for a migration Job that may run {job} s (and {LOAD_MARGIN_SECS} s to load)"
                    ));
                }
            }
        }
    } else if window < PROCESS_START_SECS {
        say(format!(
            "the startup probe gives the process {window} s to start"
        ));
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
    // Memory: the cache budget, a message of the largest size for every call in flight, and the
    // process, fit under the limit.
    let in_flight_mib =
        (config.max_concurrent_requests as u64 * config.max_message_bytes as u64).div_ceil(1 << 20);
    let needed = config.cache_mib + in_flight_mib + OVERHEAD_MIB;
    match container["resources"]["limits"]["memory"].as_str() {
        Some(limit) if mib(limit) >= needed => {}
        other => say(format!(
            "memory limit {other:?} is below {needed} MiB: a {} MiB cache + {} calls x {} bytes in flight + {OVERHEAD_MIB} MiB",
            config.cache_mib, config.max_concurrent_requests, config.max_message_bytes
        )),
    }
}

/// Whether a label selector selects something in particular (`{}` selects everything).
fn selects(selector: &Value) -> bool {
    selector["matchLabels"]
        .as_object()
        .is_some_and(|m| !m.is_empty())
        || selector["matchExpressions"]
            .as_array()
            .is_some_and(|m| !m.is_empty())
}

/// Whether `labels` has every pair of a selector's `matchLabels`.
fn matches(selector: &Value, labels: &Value) -> bool {
    selector["matchLabels"]
        .as_object()
        .is_some_and(|m| m.iter().all(|(k, v)| labels[k] == *v))
}

/// Every problem with the NetworkPolicies of a rendering: gRPC only from a labelled pod in a
/// labelled namespace, metrics only from the namespace `monitoring`, nothing from anywhere.
fn check_policies(docs: &[Value], problems: &mut Vec<String>) {
    for policy in of_kind(docs, "NetworkPolicy") {
        for rule in policy["spec"]["ingress"].as_array().into_iter().flatten() {
            let ports: Vec<&str> = rule["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["port"].as_str())
                .collect();
            let peers = rule["from"].as_array().map(Vec::as_slice).unwrap_or(&[]);
            if peers.is_empty() {
                problems.push(format!("NetworkPolicy admits anyone on {ports:?}"));
            }
            for peer in peers {
                let (namespaces, pods) = (&peer["namespaceSelector"], &peer["podSelector"]);
                if !peer["ipBlock"].is_null() || !selects(namespaces) {
                    problems.push(format!(
                        "NetworkPolicy admits every namespace (or address) on {ports:?}"
                    ));
                } else if ports.contains(&"grpc") && !selects(pods) {
                    problems.push(
                        "NetworkPolicy admits every pod of a namespace on grpc, not only labelled clients"
                            .into(),
                    );
                } else if ports.contains(&"metrics")
                    && namespaces["matchLabels"]["kubernetes.io/metadata.name"] != "monitoring"
                {
                    problems.push(
                        "NetworkPolicy admits metrics from elsewhere than the namespace monitoring"
                            .into(),
                    );
                }
            }
        }
    }
}

/// Every problem with one rendering.
pub(super) fn check_rendering(dir: &str, docs: &[Value], image: &Dockerfile) -> Vec<String> {
    let tag = format!("consentry:{}", env!("CARGO_PKG_VERSION"));
    let mut problems = Vec::new();
    let mut found = 0;
    let mut workload_ports = Vec::new();
    let mut pod_labels = Vec::new();
    for workload in of_kind(docs, "Deployment")
        .into_iter()
        .chain(of_kind(docs, "Job"))
    {
        let pod = &workload["spec"]["template"]["spec"];
        pod_labels.push(&workload["spec"]["template"]["metadata"]["labels"]);
        let containers: Vec<&Value> = ["initContainers", "containers"]
            .iter()
            .flat_map(|k| pod[*k].as_array().into_iter().flatten())
            .collect();
        let (ours, theirs): (Vec<&Value>, Vec<&Value>) = containers.into_iter().partition(|c| {
            c["image"]
                .as_str()
                .is_some_and(|i| i.starts_with("consentry"))
        });
        for container in ours {
            found += 1;
            if container["image"] != tag.as_str() {
                problems.push(format!("image {} is not {tag}", container["image"]));
            }
            check_container(docs, pod, container, image, &mut problems);
            for port in container["ports"].as_array().into_iter().flatten() {
                workload_ports.push(port["name"].as_str().unwrap_or("").to_owned());
            }
        }
        // An application beside consentry asks with a key of its own, never the bootstrap key.
        for app in theirs {
            let secrets: Vec<&str> = app["env"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e["valueFrom"]["secretKeyRef"]["name"].as_str())
                .collect();
            let name = app["name"].as_str().unwrap_or("?");
            if secrets.contains(&BOOTSTRAP_SECRET) {
                problems.push(format!("container {name} holds the bootstrap key"));
            }
            if secrets.iter().all(|s| s.starts_with("consentry")) {
                problems.push(format!(
                    "container {name} has no client key of its own (a Secret of its own)"
                ));
            }
        }
    }
    if found < 2 {
        problems.push("expected a server and a migration container".into());
    }
    // Services name ports the containers declare and select pods that exist; a central
    // deployment has a headless Service too, for clients that balance calls themselves.
    let services = of_kind(docs, "Service");
    for service in &services {
        for port in service["spec"]["ports"].as_array().into_iter().flatten() {
            let target = port["targetPort"].as_str().unwrap_or("");
            if !workload_ports.iter().any(|p| p == target) {
                problems.push(format!("Service targets unknown port {target:?}"));
            }
        }
        let selector = json!({"matchLabels": service["spec"]["selector"]});
        if !pod_labels.iter().any(|labels| matches(&selector, labels)) {
            problems.push(format!(
                "Service {} selects no pod",
                service["metadata"]["name"]
            ));
        }
    }
    let central = serving_containers(docs)
        .iter()
        .any(|(_, c)| c["restartPolicy"] != "Always");
    if central && !services.iter().any(|s| s["spec"]["clusterIP"] == "None") {
        problems.push("no headless Service for clients that balance gRPC calls themselves".into());
    }
    for policy in of_kind(docs, "NetworkPolicy") {
        for rule in policy["spec"]["ingress"].as_array().into_iter().flatten() {
            for port in rule["ports"].as_array().into_iter().flatten() {
                if let Some(name) = port["port"].as_str()
                    && !workload_ports.iter().any(|p| p == name)
                {
                    problems.push(format!("NetworkPolicy names unknown port {name:?}"));
                }
            }
        }
    }
    check_policies(docs, &mut problems);
    problems
        .into_iter()
        .map(|p| format!("{dir}: {p}"))
        .collect()
}

/// Each kustomization, and each with each component added in an overlay of its own (as
/// scripts/check-manifests renders them), by name.
fn renderings() -> Vec<(String, Vec<Value>)> {
    let mut all: Vec<(String, Vec<Value>)> = kustomizations()
        .into_iter()
        .map(|d| (d.clone(), render(&d)))
        .collect();
    let dir = TempDir::new("deploy-components");
    let tree = copy_of_the_tree(&dir.0);
    let mut components: Vec<String> = std::fs::read_dir(tree.join("components"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    components.sort();
    for component in components {
        for base in kustomizations() {
            let name = format!("{base} + components/{component}");
            let overlay = tree.join(format!(
                "overlays/with-{component}-{}",
                base.replace('/', "-")
            ));
            std::fs::create_dir_all(&overlay).unwrap();
            std::fs::write(
                overlay.join("kustomization.yaml"),
                format!("resources: [../../{base}]\ncomponents: [../../components/{component}]\n"),
            )
            .unwrap();
            all.push((name, render_at(&overlay)));
        }
    }
    all
}

#[test]
fn every_kustomization_agrees_with_the_binary() {
    let image = dockerfile();
    let mut problems = Vec::new();
    let mut signing = 0;
    for (name, docs) in renderings() {
        problems.extend(check_rendering(&name, &docs, &image));
        signing += serving_containers(&docs)
            .iter()
            .filter(|(_, c)| {
                container_env(&docs, c, &image.env)
                    .0
                    .contains_key("CONSENTRY_SIGNING_KEY_FILE")
            })
            .count();
    }
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(
        signing >= 3,
        "the signing-key component sets the file in every kustomization"
    );
}

#[test]
fn the_pod_monitor_scrapes_the_servers_metrics_port() {
    let base = render("base");
    let servers = serving_containers(&base);
    let labels = &of_kind(&base, "Deployment")[0]["spec"]["template"]["metadata"]["labels"];
    let (_, server) = servers[0];
    let (env, _) = container_env(&base, server, &dockerfile().env);
    let config = serve_from_env(&env).unwrap();
    let metrics = config.metrics_listen.expect("the base serves metrics");
    let dir = Path::new(ROOT).join("deploy/kubernetes/monitoring");
    let mut monitors = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read(entry.unwrap().path()).unwrap();
        for monitor in yaml_documents(&text) {
            assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
            assert_eq!(monitor["kind"], "PodMonitor");
            monitors += 1;
            let spec = &monitor["spec"];
            assert!(
                selects(&spec["selector"]) && matches(&spec["selector"], labels),
                "the PodMonitor selects the server pods ({labels}): {spec}"
            );
            for endpoint in spec["podMetricsEndpoints"].as_array().unwrap() {
                let port = server["ports"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|p| p["name"] == endpoint["port"])
                    .unwrap_or_else(|| panic!("the server declares the port {}", endpoint["port"]));
                assert_eq!(port["containerPort"], metrics.port());
                assert!(endpoint["path"].is_null() || endpoint["path"] == "/metrics");
            }
        }
    }
    assert!(
        monitors >= 1,
        "deploy/kubernetes/monitoring holds a PodMonitor"
    );
    // Its Prometheus is where the NetworkPolicy admits scrapes from (checked for every rendering).
    let mut problems = Vec::new();
    check_policies(&base, &mut problems);
    assert!(problems.is_empty(), "{problems:#?}");
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
