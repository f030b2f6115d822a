//! What the operations guide tells an operator to do, done as written: the sidecar's own client
//! made with the guide's command and its key used against a server; the signing key Secret made
//! with the guide's commands, the guide's overlay rendered, and a server started on what it
//! mounts; the database connections the guide counts, counted in PostgreSQL under load.
//!
//! The guide's shell blocks run in `bash` with the binary under test as `consentry` and, in place
//! of a cluster, a `kubectl` that records its arguments (and the files it is given).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use consentry::proto::consistency::Requirement;
use consentry::proto::permission_service_client::PermissionServiceClient;
use consentry::proto::{CheckAccessRequest, Consistency, GetSigningKeysRequest, PutTenantRequest};
use serde_json::Value;
use sqlx::{Connection, PgConnection};
use tonic::Code;

use super::{
    OPERATIONS, blocks, container_env, copy_of_the_tree, render, render_at, serve_from_env,
    serving_containers, table_row,
};
use crate::support::calls::Who;
use crate::support::db::{TestDb, postgres_server_url};
use crate::support::dir::TempDir;
use crate::support::server::{TestServer, config};

/// Where the guide's database URLs point; replaced by a test database's.
const GUIDE_RUNTIME_URL: &str = "postgres://consentry_runtime:…@db:5432/consentry";

/// One call of the recording `kubectl`: its arguments, and the files it was given by
/// `--from-file` (by key), read when it ran.
struct Kubectl {
    args: Vec<String>,
    files: Vec<(String, Vec<u8>)>,
}

/// Runs `block` in `bash -e` in `dir`, and returns every `kubectl` call it made.
fn run_as_written(block: &str, dir: &Path) -> Vec<Kubectl> {
    let bin = dir.join("bin");
    let log = dir.join("kubectl-log");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&log).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_consentry"), bin.join("consentry")).unwrap();
    let kubectl = bin.join("kubectl");
    std::fs::write(
        &kubectl,
        r#"#!/usr/bin/env bash
set -euo pipefail
n=$(find "$KUBECTL_LOG" -name '*.args' | wc -l)
printf '%s\0' "$@" >"$KUBECTL_LOG/$n.args"
for arg in "$@"; do
  case "$arg" in
    --from-file=*)
      spec=${arg#--from-file=}
      cp "${spec#*=}" "$KUBECTL_LOG/$n.file.$(basename "${spec%%=*}")"
      ;;
  esac
done
"#,
    )
    .unwrap();
    std::fs::set_permissions(&kubectl, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let out = std::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", block])
        .current_dir(dir)
        .env("PATH", path)
        .env("KUBECTL_LOG", &log)
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the guide's block failed:\n{block}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut calls = Vec::new();
    for n in 0.. {
        let Ok(args) = std::fs::read(log.join(format!("{n}.args"))) else {
            break;
        };
        let args = String::from_utf8(args)
            .unwrap()
            .split_terminator('\0')
            .map(str::to_owned)
            .collect();
        let prefix = format!("{n}.file.");
        let files = std::fs::read_dir(&log)
            .unwrap()
            .map(|e| e.unwrap())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let key = name.strip_prefix(&prefix)?.to_owned();
                Some((key, std::fs::read(e.path()).unwrap()))
            })
            .collect();
        calls.push(Kubectl { args, files });
    }
    calls
}

/// The one call of `calls` that creates the Secret `name`.
fn secret_call<'a>(calls: &'a [Kubectl], name: &str) -> &'a Kubectl {
    let found: Vec<&Kubectl> = calls
        .iter()
        .filter(|c| {
            c.args.starts_with(&[
                "create".into(),
                "secret".into(),
                "generic".into(),
                name.into(),
            ])
        })
        .collect();
    assert_eq!(found.len(), 1, "the guide creates the Secret {name} once");
    found[0]
}

/// The one block of `lang` in the guide's section `heading` that contains `needle`.
fn block_with(heading: &str, lang: &str, needle: &str) -> String {
    let found: Vec<String> = blocks(heading, lang)
        .into_iter()
        .filter(|b| b.contains(needle))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one block with {needle:?} under {heading:?}"
    );
    found.into_iter().next().unwrap()
}

#[tokio::test]
async fn the_sidecar_application_asks_with_a_client_of_its_own() {
    let db = TestDb::postgres().await;
    let block = block_with("## Central or sidecar", "", "client create");
    assert!(block.contains(GUIDE_RUNTIME_URL), "{block}");
    let dir = TempDir::new("guide-sidecar-client");
    let calls = run_as_written(&block.replace(GUIDE_RUNTIME_URL, &db.url), &dir.0);

    // The Secret the guide makes is the one the example application reads.
    let call = &secret_call(&calls, "example-app-consentry").args;
    let literal = call
        .iter()
        .find_map(|a| a.strip_prefix("--from-literal="))
        .expect("the key is given literally");
    let (field, key) = literal.split_once('=').unwrap();
    let sidecar = render("overlays/sidecar");
    let reads: Vec<(String, String)> = super::of_kind(&sidecar, "Deployment")
        .iter()
        .flat_map(|d| {
            d["spec"]["template"]["spec"]["containers"]
                .as_array()
                .unwrap()
                .iter()
        })
        .flat_map(|c| c["env"].as_array().into_iter().flatten())
        .filter_map(|e| {
            let r = &e["valueFrom"]["secretKeyRef"];
            Some((
                r["name"].as_str()?.to_owned(),
                r["key"].as_str()?.to_owned(),
            ))
        })
        .collect();
    assert_eq!(
        reads,
        [("example-app-consentry".to_owned(), field.to_owned())]
    );

    // The key works for queries in its tenant, and for nothing else.
    let server = TestServer::start(&db).await;
    let mut permission = server.permission().await;
    let app = Who::key(key);
    let check = |tenant: &str| CheckAccessRequest {
        tenant_id: tenant.into(),
        app_id: "app".into(),
        user_id: "u".into(),
        ..Default::default()
    };
    permission
        .check_access(app.r(check("acme")))
        .await
        .expect("the application's key asks in its tenant");
    let other = permission.check_access(app.r(check("other"))).await;
    assert_eq!(other.unwrap_err().code(), Code::PermissionDenied);
    let write = server
        .admin()
        .await
        .put_tenant(app.r(PutTenantRequest {
            tenant_id: "acme".into(),
            environment: "production".into(),
            whitelisting_enabled: false,
        }))
        .await;
    assert_eq!(write.unwrap_err().code(), Code::PermissionDenied);
    server.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn the_signing_key_secret_and_component_make_tokens_work() {
    let heading = "## Context token signing keys";
    let dir = TempDir::new("guide-signing-key");
    let calls = run_as_written(&block_with(heading, "", "keygen"), &dir.0);
    let secret = secret_call(&calls, "consentry-signing-key");
    let [(key_name, pem)] = secret.files.as_slice() else {
        panic!("the Secret holds one file: {:?}", secret.args)
    };

    // The guide's overlay, beside the given ones in a copy of the tree.
    let overlay = block_with(heading, "yaml", "components/signing-key");
    let tree = copy_of_the_tree(&dir.0);
    let production = tree.join("overlays/production");
    std::fs::create_dir_all(&production).unwrap();
    std::fs::write(production.join("kustomization.yaml"), overlay).unwrap();
    let docs = render_at(&production);
    let [(pod, server)] = serving_containers(&docs)[..] else {
        panic!("one server in the guide's overlay")
    };
    let (env, _) = container_env(&docs, server, &Default::default());
    let file = PathBuf::from(&env["CONSENTRY_SIGNING_KEY_FILE"]);
    let volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["secret"]["secretName"] == "consentry-signing-key")
        .expect("the Secret is a volume");
    let mount = server["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == volume["name"])
        .expect("the volume is mounted");
    let mounted = Path::new(mount["mountPath"].as_str().unwrap()).join(key_name);
    assert_eq!(
        file, mounted,
        "the variable names the file the Secret's key becomes"
    );

    // What the kubelet would put there, served: the key is published.
    let root = dir.0.join("root");
    let on_disk = root.join(file.strip_prefix("/").unwrap());
    std::fs::create_dir_all(on_disk.parent().unwrap()).unwrap();
    std::fs::write(&on_disk, pem).unwrap();
    let db = TestDb::sqlite().await;
    let mut cfg = config(&db);
    cfg.signing_key_file = Some(on_disk);
    let server = TestServer::start_with(cfg).await;
    let jwks = PermissionServiceClient::new(server.channel().await)
        .get_signing_keys(GetSigningKeysRequest {})
        .await
        .unwrap()
        .into_inner()
        .jwks;
    let jwks: Value = serde_json::from_str(&jwks).unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1, "{jwks}");
    server.stop().await;
    db.cleanup().await;
}

/// The guide's count of one instance's connections, from its table's first number in `cell`.
fn counted(cell: &str) -> u32 {
    cell.split_whitespace().next().unwrap().parse().unwrap()
}

/// Connections to the database `name`, as PostgreSQL counts them.
async fn connections(admin: &mut PgConnection, name: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = $1")
        .bind(name)
        .fetch_one(admin)
        .await
        .unwrap()
}

#[tokio::test]
async fn each_instance_holds_the_connections_the_guide_counts() {
    // The guide's numbers are pool + LISTEN of each rendering.
    let row = table_row(OPERATIONS, "database connections");
    let mut sidecar_config = None;
    for (dir, cell) in [("base", &row[1]), ("overlays/sidecar", &row[2])] {
        let docs = render(dir);
        let (_, server) = serving_containers(&docs)[0];
        let config = serve_from_env(&container_env(&docs, server, &Default::default()).0).unwrap();
        let expected = config.db_max_connections + u32::from(config.change_listener);
        assert_eq!(counted(cell), expected, "{dir}: the guide says {cell:?}");
        sidecar_config = Some(config);
    }
    let sidecar = sidecar_config.unwrap();
    let expected = i64::from(sidecar.db_max_connections + u32::from(sidecar.change_listener));

    // A server with the sidecar's settings, its pool kept busy by store-bound calls.
    let db = TestDb::postgres().await;
    let mut cfg = config(&db);
    cfg.db_max_connections = sidecar.db_max_connections;
    cfg.change_listener = sidecar.change_listener;
    let server = TestServer::start_with(cfg).await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut callers = Vec::new();
    for n in 0..8 {
        let (channel, stop) = (server.channel().await, stop.clone());
        callers.push(tokio::spawn(async move {
            let mut permission = PermissionServiceClient::new(channel);
            while !stop.load(Ordering::Relaxed) {
                let check = CheckAccessRequest {
                    tenant_id: format!("t{n}"),
                    app_id: "app".into(),
                    user_id: "u".into(),
                    consistency: Some(Consistency {
                        requirement: Some(Requirement::FullyConsistent(true)),
                    }),
                    ..Default::default()
                };
                let _ = permission.check_access(Who::boot().r(check)).await;
            }
        }));
    }
    let mut admin = PgConnection::connect(&postgres_server_url()).await.unwrap();
    let name = db.postgres_name().to_owned();
    // Until the pool is full, then a while longer: never more than the guide counts.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    let mut pace = tokio::time::interval(Duration::from_millis(10));
    while seen.iter().filter(|&&n| n == expected).count() < 100 {
        assert!(
            Instant::now() < deadline,
            "never {expected} connections: {seen:?}"
        );
        pace.tick().await;
        seen.push(connections(&mut admin, &name).await);
    }
    stop.store(true, Ordering::Relaxed);
    for caller in callers {
        caller.await.unwrap();
    }
    let most = seen.iter().copied().max().unwrap();
    assert_eq!(most, expected, "at most pool + LISTEN: {seen:?}");
    let _ = admin.close().await;
    server.stop().await;
    db.cleanup().await;
}
