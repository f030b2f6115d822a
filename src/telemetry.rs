//! Tracing set-up: structured logs to stderr, filtered by `RUST_LOG` (default `info`), as
//! text for people or JSON for log pipelines.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once; later calls do nothing (tests start many servers).
pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}
