//! The admin commands as the guide runs them: `consentry client create` and `client revoke`
//! as the guide's runtime role, checking the schema and never changing it, never guessing a
//! database; and the guide's Kubernetes Job for them, valid and parsed by the binary's own
//! command line.

use std::time::Duration;

use clap::Parser;
use consentry::config::{Cli, ClientCommand, Command as Sub};
use consentry::proto::{ListTenantsRequest, RevokeClientRequest};
use serde::Deserialize;
use serde_json::Value;
use tonic::Code;

use super::guide::{Names, blocks, consentry, section, text};
use crate::support::calls::{Who, fails, ok};
use crate::support::dir::TempDir;
use crate::support::server::{TestServer, config_at, eventually};

/// The tables of the public schema of `url`'s database, as the server's superuser sees them.
async fn tables(url: &str) -> Vec<String> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    let tables = sqlx::query_scalar(
        "SELECT CAST(table_name AS TEXT) FROM information_schema.tables \
         WHERE table_schema = 'public' ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    tables
}

/// `consentry client create` of a client with admin and app_manager on every tenant.
const CREATE_OPS: [&str; 8] = [
    "client",
    "create",
    "--id",
    "ops",
    "--tenants",
    "*",
    "--capabilities",
    "admin,app_manager",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_commands_run_as_the_guides_runtime_role_and_never_migrate() {
    let names = Names::new();
    names.set_up().await;
    let (migrator, runtime) = (names.migrator_url(), names.runtime_url());
    let dir = TempDir::new("ops-admin");

    // Before `consentry migrate`: as either role, a failure that says to migrate, no key, and
    // the schema left as it was (empty: nothing migrated behind the operator's back).
    for url in [&runtime, &migrator] {
        let out = consentry(&CREATE_OPS, &[("DATABASE_URL", url)], &dir.0).await;
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("consentry migrate"), "{stderr}");
        assert!(!stderr.contains("permission denied"), "{stderr}");
        assert!(out.stdout.is_empty(), "no key: {}", text(&out.stdout));
        let revoke = ["client", "revoke", "--id", "ops", "--database-url", url];
        let out = consentry(&revoke, &[], &dir.0).await;
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
        assert!(text(&out.stderr).contains("consentry migrate"));
    }
    assert_eq!(tables(&names.superuser_url()).await, Vec::<String>::new());

    let out = consentry(&["migrate"], &[("DATABASE_URL", &migrator)], &dir.0).await;
    assert!(out.status.success(), "{}", text(&out.stderr));

    // As the runtime role, from DATABASE_URL: a key that works on a runtime-role server.
    let out = consentry(&CREATE_OPS, &[("DATABASE_URL", &runtime)], &dir.0).await;
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = text(&out.stdout);
    let key = stdout.trim();
    assert_eq!(
        stdout.lines().count(),
        1,
        "stdout holds the key alone: {stdout:?}"
    );
    let mut config = config_at(&runtime);
    config.migrate = false;
    let server = TestServer::start_with(config).await;
    let mut admin = server.admin().await;
    let ops = Who::key(key);
    ok(admin
        .list_tenants(ops.r(ListTenantsRequest::default()))
        .await);
    // The incident: this client revokes the bootstrap client the server created.
    ok(admin
        .revoke_client(ops.r(RevokeClientRequest {
            client_id: "bootstrap".into(),
        }))
        .await);
    fails(
        admin
            .list_tenants(Who::boot().r(ListTenantsRequest::default()))
            .await,
        Code::Unauthenticated,
        "",
    );

    // Revoked by the command, as the runtime role, from the flag: the key stops working.
    let revoke = [
        "client",
        "revoke",
        "--id",
        "ops",
        "--database-url",
        &runtime,
    ];
    let out = consentry(&revoke, &[], &dir.0).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    eventually(Duration::from_secs(5), || {
        let mut admin = admin.clone();
        let ops = ops.clone();
        async move {
            matches!(
                admin.list_tenants(ops.r(ListTenantsRequest::default())).await,
                Err(s) if s.code() == Code::Unauthenticated
            )
        }
    })
    .await;
    server.stop().await;
    assert!(
        std::fs::read_dir(&dir.0).unwrap().next().is_none(),
        "nothing written to the working directory"
    );
}

#[tokio::test]
async fn the_client_commands_never_guess_a_database_nor_create_one() {
    let dir = TempDir::new("ops-admin-nourl");
    let revoke = ["client", "revoke", "--id", "bootstrap"];
    for args in [&CREATE_OPS[..], &revoke[..]] {
        for env in [&[][..], &[("DATABASE_URL", "")][..]] {
            let out = consentry(args, env, &dir.0).await;
            let stderr = text(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "a usage error: {stderr}");
            assert!(
                stderr.contains("--database-url") && stderr.contains("DATABASE_URL"),
                "{stderr}"
            );
            assert!(out.stdout.is_empty());
        }
    }
    // An SQLite file that is not there is not made up either: its schema is behind.
    let url = format!("sqlite://{}/consentry.db", dir.0.display());
    for args in [&CREATE_OPS[..], &revoke[..]] {
        let out = consentry(args, &[("DATABASE_URL", &url)], &dir.0).await;
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("consentry migrate"), "{stderr}");
        assert!(out.stdout.is_empty());
    }
    let left: Vec<_> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "created {left:?}");
}

/// Where the Dockerfile installs the binary.
const BINARY: &str = "/usr/local/bin/consentry";

#[test]
fn the_guides_admin_job_runs_a_client_command_as_the_runtime_role() {
    let admin = section("## Admin commands");
    let jobs: Vec<Value> = blocks(&admin)
        .into_iter()
        .filter(|b| b.lang == "yaml")
        .flat_map(|b| {
            serde_yaml_ng::Deserializer::from_str(&b.text)
                .map(|doc| Value::deserialize(doc).unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(jobs.len(), 1, "one Job in the guide");
    let job = &jobs[0];
    assert_eq!(job["kind"], "Job");
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let container = &pod["containers"][0];
    // The image's entrypoint is `consentry serve`: the Job names the whole command.
    let command: Vec<&str> = container["command"]
        .as_array()
        .expect("a command")
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(command[0], BINARY);
    // The variable the binary reads, from the runtime role's URL.
    let env = &container["env"][0];
    assert_eq!(env["name"], "DATABASE_URL");
    assert_eq!(
        env["valueFrom"]["secretKeyRef"]["name"],
        "consentry-database"
    );
    assert_eq!(env["valueFrom"]["secretKeyRef"]["key"], "url");
    let parsed = Cli::try_parse_from(&command).unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(matches!(
        parsed.command,
        Sub::Client(ClientCommand::Revoke { .. })
    ));
    // The create command the guide gives for the same Job parses too.
    let create = admin
        .split("make the command `")
        .nth(1)
        .and_then(|rest| rest.split('`').next())
        .expect("the guide gives the create command");
    let create: Vec<String> = serde_json::from_str(&create.replace('\n', " ")).unwrap();
    assert_eq!(create[0], BINARY);
    let parsed = Cli::try_parse_from(&create).unwrap_or_else(|e| panic!("{create:?}: {e}"));
    assert!(matches!(
        parsed.command,
        Sub::Client(ClientCommand::Create { .. })
    ));

    // Valid for the Kubernetes versions the manifests are checked against.
    let dir = TempDir::new("ops-admin-job");
    let file = dir.write(
        "job.yaml",
        &blocks(&admin)
            .into_iter()
            .find(|b| b.lang == "yaml")
            .unwrap()
            .text,
    );
    for version in ["1.29.0", "1.37.0"] {
        let out = std::process::Command::new("kubernetes-validate")
            .args(["--quiet", "--strict", "-k", version])
            .arg(&file)
            .output()
            .expect(
                "kubernetes-validate is needed: pip install kubernetes-validate (scripts/ensure-services does it)",
            );
        assert!(
            out.status.success(),
            "the guide's Job is not valid for Kubernetes {version}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }
}
