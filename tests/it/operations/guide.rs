//! docs/operations.md as the operations tests read it: the binary run as an operator runs it.

use std::path::Path;

/// `consentry <args>` run to completion in `dir`, with `env` set and nothing else of the
/// caller's `DATABASE_URL` or `CONSENTRY_BOOTSTRAP_KEY`.
pub async fn consentry(args: &[&str], env: &[(&str, &str)], dir: &Path) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_consentry"))
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("CONSENTRY_BOOTSTRAP_KEY")
        .envs(env.iter().copied())
        .current_dir(dir)
        .output()
        .await
        .expect("the consentry binary runs")
}

/// Text of a process's output, for messages.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
