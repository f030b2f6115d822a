//! deploy/mesh agrees with Envoy and with consentry: the Envoy sidecar's configuration is a valid
//! `envoy.config.bootstrap.v3.Bootstrap` by Envoy's own protos (those the envoy-types crate ships,
//! compiled here, every typed config resolved and unknown fields refused), it holds the settings
//! operators trip on, and consentry's settings files beside it load as the server loads them.
//! (The Istio objects are validated against Istio's schemas by scripts/check-manifests.)

use std::path::{Path, PathBuf};
use std::process::Command;

use prost_reflect::{DescriptorPool, DynamicMessage};
use serde_json::{Value, json};

use super::{ROOT, yaml_documents};

/// The protos of every type deploy/mesh/envoy/envoy.yaml names.
const ENVOY_PROTOS: &[&str] = &[
    "envoy/config/bootstrap/v3/bootstrap.proto",
    "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto",
    "envoy/extensions/filters/http/ext_authz/v3/ext_authz.proto",
    "envoy/extensions/filters/http/jwt_authn/v3/config.proto",
    "envoy/extensions/filters/http/router/v3/router.proto",
    "envoy/extensions/upstreams/http/v3/http_protocol_options.proto",
    "envoy/extensions/access_loggers/stream/v3/stream.proto",
];

/// The `proto/` directory of the envoy-types package the build uses.
fn envoy_proto_root() -> PathBuf {
    // This machine's packages only: others' are never downloaded.
    let rustc = Command::new("rustc")
        .arg("-vV")
        .output()
        .expect("rustc -vV");
    let host = String::from_utf8_lossy(&rustc.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .expect("rustc names its host");
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1"])
        .args(["--filter-platform", &host])
        .current_dir(ROOT)
        .output()
        .expect("cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: Value = serde_json::from_slice(&out.stdout).unwrap();
    let manifest = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "envoy-types")
        .and_then(|p| p["manifest_path"].as_str())
        .expect("envoy-types is a dev-dependency");
    Path::new(manifest).parent().unwrap().join("proto")
}

/// Envoy's configuration types, compiled from the protos envoy-types ships.
fn envoy_pool() -> DescriptorPool {
    let root = envoy_proto_root();
    let includes: Vec<PathBuf> = [
        "data-plane-api",
        "xds",
        "protoc-gen-validate",
        "googleapis",
        "cel-spec/proto",
        "opentelemetry-proto",
        "client_model",
    ]
    .iter()
    .map(|d| root.join(d))
    .filter(|d| d.is_dir())
    .collect();
    let mut compiler = protox::Compiler::new(includes).unwrap();
    compiler.include_imports(true);
    compiler
        .open_files(ENVOY_PROTOS)
        .unwrap_or_else(|e| panic!("Envoy's protos compile: {e}"));
    compiler.descriptor_pool()
}

/// `config` read as a Bootstrap: the error of the first field Envoy would refuse.
fn as_bootstrap(pool: &DescriptorPool, config: &Value) -> Result<DynamicMessage, String> {
    let bootstrap = pool
        .get_message_by_name("envoy.config.bootstrap.v3.Bootstrap")
        .unwrap();
    DynamicMessage::deserialize(bootstrap, config.clone()).map_err(|e| e.to_string())
}

fn envoy_config() -> Value {
    let text = std::fs::read(Path::new(ROOT).join("deploy/mesh/envoy/envoy.yaml")).unwrap();
    yaml_documents(&text).remove(0)
}

/// Every `typed_config` (and per-route config) of `value` whose `@type` ends with `name`.
fn typed<'a>(value: &'a Value, name: &str, found: &mut Vec<&'a Value>) {
    match value {
        Value::Object(map) => {
            if map
                .get("@type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.ends_with(name))
            {
                found.push(value);
            }
            map.values().for_each(|v| typed(v, name, found));
        }
        Value::Array(items) => items.iter().for_each(|v| typed(v, name, found)),
        _ => {}
    }
}

#[test]
fn the_envoy_sidecar_config_is_a_valid_bootstrap_by_envoys_own_protos() {
    let pool = envoy_pool();
    let config = envoy_config();
    if let Err(e) = as_bootstrap(&pool, &config) {
        panic!("deploy/mesh/envoy/envoy.yaml is not a valid Bootstrap: {e}");
    }
    // The check refuses what Envoy refuses: a misspelt field of the filter, an unknown type.
    let mut misspelt = config.clone();
    let filters = &mut misspelt["static_resources"]["listeners"][0]["filter_chains"][0]["filters"]
        [0]["typed_config"]["http_filters"];
    filters[1]["typed_config"]["failure_mode_alow"] = json!(false);
    let e = as_bootstrap(&pool, &misspelt).unwrap_err();
    assert!(e.contains("failure_mode_alow"), "{e}");
    let mut unknown = config.clone();
    unknown["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        ["@type"] = json!("type.googleapis.com/envoy.extensions.filters.network.nope.v3.Nope");
    assert!(as_bootstrap(&pool, &unknown).is_err());
}

#[test]
fn the_ext_authz_filter_fails_closed_quickly_and_lets_consentry_strip_its_headers() {
    let config = envoy_config();
    let mut filters = Vec::new();
    typed(&config, "ext_authz.v3.ExtAuthz", &mut filters);
    let [filter] = filters.as_slice() else {
        panic!("one ext_authz filter: {filters:?}");
    };
    assert_eq!(filter["failure_mode_allow"], json!(false));
    assert_eq!(
        filter["status_on_error"]["code"],
        json!("ServiceUnavailable")
    );
    assert_eq!(filter["validate_mutations"], json!(true));
    assert_eq!(filter["transport_api_version"], json!("V3"));
    let timeout = filter["grpc_service"]["timeout"].as_str().unwrap();
    let timeout = humantime::parse_duration(timeout).unwrap();
    assert!(
        timeout <= std::time::Duration::from_millis(250),
        "{timeout:?}"
    );
    // consentry sees the client's x-consentry-* headers, or it could not remove them.
    let patterns = filter["allowed_headers"]["patterns"].as_array().unwrap();
    assert!(
        patterns
            .iter()
            .any(|p| p["prefix"] == json!("x-consentry-") && p["ignore_case"] == json!(true)),
        "{patterns:?}"
    );
    // The key is sent as consentry reads it.
    let metadata = filter["grpc_service"]["initial_metadata"]
        .as_array()
        .unwrap();
    assert!(metadata.iter().any(|m| m["key"] == json!("authorization")
        && m["value"].as_str().unwrap().starts_with("Bearer csk_")));
    // The claims consentry is configured to read are sent.
    assert_eq!(
        filter["metadata_context_namespaces"],
        json!(["envoy.filters.http.jwt_authn"])
    );
    // The cluster it asks speaks HTTP/2 to consentry's listener.
    let clusters = config["static_resources"]["clusters"].as_array().unwrap();
    let consentry = clusters
        .iter()
        .find(|c| c["name"] == json!("consentry"))
        .unwrap();
    assert!(consentry.to_string().contains("http2_protocol_options"));
    assert!(consentry.to_string().contains("50051"));
}

#[test]
fn each_route_names_only_what_consentry_reads() {
    let config = envoy_config();
    let mut routes = Vec::new();
    typed(&config, "ext_authz.v3.ExtAuthzPerRoute", &mut routes);
    assert!(!routes.is_empty());
    let read = [
        "tenant_id",
        "app_id",
        "permission",
        "resource_prefix",
        "scope",
    ];
    for route in routes {
        if let Some(extensions) = route["check_settings"]["context_extensions"].as_object() {
            for key in extensions.keys() {
                assert!(read.contains(&key.as_str()), "consentry ignores {key}");
            }
        }
    }
}

#[test]
fn consentrys_settings_beside_each_example_load_as_the_server_loads_them() {
    for (file, claims_user, principals) in [
        ("deploy/mesh/envoy/ext-authz.toml", "sub", 0),
        ("deploy/mesh/istio/ext-authz.yaml", "sub", 1),
    ] {
        let mut config =
            consentry::config::ServeConfig::new("127.0.0.1:0".parse().unwrap(), "sqlite::memory:");
        config.ext_authz.config = Some(Path::new(ROOT).join(file));
        let settings = config
            .ext_authz_settings()
            .unwrap_or_else(|e| panic!("{file}: {e:?}"))
            .expect("on");
        let claims = settings.claims.expect("claims");
        assert_eq!(claims.namespace, "envoy.filters.http.jwt_authn", "{file}");
        assert_eq!(claims.names.user_id.as_deref(), Some(claims_user), "{file}");
        assert_eq!(settings.principals.len(), principals, "{file}");
        assert!(config.validate().is_ok(), "{file}");
    }
}

#[test]
fn the_istio_provider_fails_closed_quickly_on_consentrys_port() {
    // IstioOperator's published schema leaves meshConfig open, so the provider's fields are
    // checked here by name, against Istio's EnvoyExternalAuthorizationGrpcProvider.
    let text =
        std::fs::read(Path::new(ROOT).join("deploy/mesh/istio/extension-provider.yaml")).unwrap();
    let operator = yaml_documents(&text).remove(0);
    let providers = operator["spec"]["meshConfig"]["extensionProviders"]
        .as_array()
        .unwrap();
    let [provider] = providers.as_slice() else {
        panic!("one provider: {providers:?}");
    };
    assert_eq!(provider["name"], json!("consentry"));
    let grpc = provider["envoyExtAuthzGrpc"].as_object().unwrap();
    let known = [
        "service",
        "port",
        "timeout",
        "failOpen",
        "statusOnError",
        "clearRouteCache",
        "includeRequestBodyInCheck",
    ];
    for key in grpc.keys() {
        assert!(
            known.contains(&key.as_str()),
            "not a field of the provider: {key}"
        );
    }
    assert_eq!(grpc["failOpen"], json!(false));
    assert_eq!(grpc["statusOnError"], json!("503"));
    assert_eq!(grpc["port"], json!(50051));
    let timeout = humantime::parse_duration(grpc["timeout"].as_str().unwrap()).unwrap();
    assert!(
        timeout <= std::time::Duration::from_millis(250),
        "{timeout:?}"
    );
    // The policy names this provider.
    let text =
        std::fs::read(Path::new(ROOT).join("deploy/mesh/istio/authorization-policy.yaml")).unwrap();
    let policy = yaml_documents(&text).remove(0);
    assert_eq!(policy["spec"]["action"], json!("CUSTOM"));
    assert_eq!(policy["spec"]["provider"]["name"], provider["name"]);
}
