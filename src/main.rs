//! The `consentry` binary: parses the command line and hands over to the library.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use consentry::config::{Cli, ClientCommand, Command};
use consentry::domain::{Capabilities, Capability, ClientId, TenantBounds};
use consentry::service::auth::{generate_key, hash_key};
use consentry::startup::{App, shutdown_signal};
use consentry::store::Store;

/// mimalloc: a request allocates and frees small blocks on whichever worker thread runs it, and
/// glibc's per-thread arenas then contend on their locks (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = matches!(&cli.command, Command::Serve(c) if c.log_json);
    consentry::telemetry::init(json);
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("consentry: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(config) => {
            let app = App::build(*config).await?;
            if let Some(addr) = app.metrics_addr() {
                eprintln!("metrics at http://{addr}/metrics");
            }
            if let Some(addr) = app.health_addr() {
                eprintln!("health (plaintext) at {addr}");
            }
            let scheme = if app.tls() { " (TLS)" } else { "" };
            eprintln!("consentry listening on {}{scheme}", app.local_addr());
            if let Some(key) = app.demo_key() {
                eprintln!("demo world loaded; its key (for examples only, never in production):");
                println!("{key}");
            }
            app.run_until_stopped(shutdown_signal()).await
        }
        Command::Migrate(db) => {
            let backend = consentry::store::migrate(&db.database_url).await?;
            eprintln!("migrations applied ({backend:?})");
            Ok(())
        }
        Command::Client(ClientCommand::Create {
            id,
            tenants,
            capabilities,
            db,
        }) => {
            let client_id = ClientId::parse("--id", &id)?;
            let tenants = TenantBounds::parse("--tenants", &tenants)?;
            let caps = capabilities
                .iter()
                .map(|c| Capability::parse("--capabilities", c.trim()))
                .collect::<Result<Vec<_>, _>>()?;
            let store = consentry::store::connect(&db.database_url, 1).await?;
            let key = generate_key()?;
            store
                .create_client(
                    None,
                    &client_id,
                    &tenants,
                    Capabilities::of(caps),
                    &hash_key(&key),
                )
                .await?;
            eprintln!("created client {client_id}; its key (shown once):");
            println!("{key}");
            Ok(())
        }
        Command::Client(ClientCommand::Revoke { id, db }) => {
            let client_id = ClientId::parse("--id", &id)?;
            let store = consentry::store::connect(&db.database_url, 1).await?;
            store.revoke_client(None, &client_id).await?;
            eprintln!("revoked client {client_id}");
            Ok(())
        }
    }
}
