//! The command line: `serve`, `migrate` and `client create|revoke`, each flag with its
//! environment variable and a documented default.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::store::backend::DEFAULT_DATABASE_URL;

/// Default gRPC listen address: loopback only, so nothing is exposed by accident.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";

/// A secret that never prints itself.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret's text.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::str::FromStr for Secret {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() < 32 {
            Err("a key must be at least 32 characters of randomness (e.g. `openssl rand -base64 32`)".to_owned())
        } else {
            Ok(Secret(s.to_owned()))
        }
    }
}

/// consentry: consent, scopes and permissions of third-party apps in customer tenants, over gRPC.
#[derive(Debug, Parser)]
#[command(name = "consentry", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gRPC server.
    Serve(ServeConfig),
    /// Apply pending database migrations and exit.
    Migrate(DatabaseArgs),
    /// Create or revoke a client directly in the database.
    #[command(subcommand)]
    Client(ClientCommand),
}

/// Where the store is.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// Database URL: `postgres://…` for Postgres, `sqlite://path` for an embedded SQLite file
    /// (the default, created in the working directory).
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,
}

/// `consentry client …`.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Create a client and print its key (shown once).
    Create {
        /// The client's id.
        #[arg(long)]
        id: String,
        /// Tenants it may act in, comma-separated; `*` for every tenant.
        #[arg(long, value_delimiter = ',', required = true)]
        tenants: Vec<String>,
        /// Capabilities, comma-separated: query, admin, app_manager, assert_user.
        #[arg(long, value_delimiter = ',', required = true)]
        capabilities: Vec<String>,
        /// Where the store is.
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Revoke a client's key.
    Revoke {
        /// The client's id.
        #[arg(long)]
        id: String,
        /// Where the store is.
        #[command(flatten)]
        db: DatabaseArgs,
    },
}

/// `consentry serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// Address to serve gRPC on; port 0 picks a free port (printed at start).
    #[arg(long, env = "CONSENTRY_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Where the store is.
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// Address to serve Prometheus metrics on (`/metrics`); off when unset.
    #[arg(long, env = "CONSENTRY_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Creates the client `bootstrap` (every capability, every tenant) with this key if it does not exist.
    #[arg(long, env = "CONSENTRY_BOOTSTRAP_KEY", hide_env_values = true)]
    pub bootstrap_key: Option<Secret>,
    /// Load a small example world and print a key that works for it.
    #[arg(long)]
    pub demo: bool,
    /// Log JSON lines instead of text.
    #[arg(long, env = "CONSENTRY_LOG_JSON")]
    pub log_json: bool,
    /// Database connections in the pool.
    #[arg(long, env = "CONSENTRY_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,
    /// Most items in one CheckAccessBatch.
    #[arg(long, env = "CONSENTRY_MAX_BATCH", default_value_t = 100)]
    pub max_batch: usize,
    /// Per-request timeout, in milliseconds; a request past it gets DEADLINE_EXCEEDED.
    #[arg(long, env = "CONSENTRY_REQUEST_TIMEOUT_MS", default_value_t = 5_000)]
    pub request_timeout_ms: u64,
    /// Requests served at once; beyond it, requests are shed with RESOURCE_EXHAUSTED.
    #[arg(
        long,
        env = "CONSENTRY_MAX_CONCURRENT_REQUESTS",
        default_value_t = 1_024
    )]
    pub max_concurrent_requests: usize,
    /// Largest request message, in bytes.
    #[arg(long, env = "CONSENTRY_MAX_MESSAGE_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_message_bytes: usize,
    /// Memory budget of the snapshot caches, in MiB (sized for a sidecar).
    #[arg(long, env = "CONSENTRY_CACHE_MIB", default_value_t = 64)]
    pub cache_mib: u64,
    /// Longest a cached snapshot is kept, in seconds: a safety net behind invalidation.
    #[arg(long, env = "CONSENTRY_CACHE_TTL_SECS", default_value_t = 300)]
    pub cache_ttl_secs: u64,
    /// After SIGTERM, how long health says NOT_SERVING while requests are still accepted, so
    /// load balancers stop sending first, in milliseconds.
    #[arg(long, env = "CONSENTRY_SHUTDOWN_DELAY_MS", default_value_t = 500)]
    pub shutdown_delay_ms: u64,
    /// How long in-flight requests may finish after SIGTERM, in milliseconds.
    #[arg(long, env = "CONSENTRY_SHUTDOWN_GRACE_MS", default_value_t = 10_000)]
    pub shutdown_grace_ms: u64,
}

impl ServeConfig {
    /// A configuration with every default, serving on `listen` from `database_url`.
    pub fn new(listen: SocketAddr, database_url: impl Into<String>) -> Self {
        Self {
            listen,
            db: DatabaseArgs {
                database_url: database_url.into(),
            },
            metrics_listen: None,
            bootstrap_key: None,
            demo: false,
            log_json: false,
            db_max_connections: 16,
            max_batch: 100,
            request_timeout_ms: 5_000,
            max_concurrent_requests: 1_024,
            max_message_bytes: 4 * 1024 * 1024,
            cache_mib: 64,
            cache_ttl_secs: 300,
            shutdown_delay_ms: 500,
            shutdown_grace_ms: 10_000,
        }
    }

    /// The per-request timeout.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn serve_defaults_are_documented_values_and_secrets_do_not_print() {
        let cli = Cli::try_parse_from([
            "consentry",
            "serve",
            "--bootstrap-key",
            "0123456789abcdef-secret-0123456789",
        ])
        .unwrap();
        let Command::Serve(cfg) = cli.command else {
            panic!("not serve")
        };
        assert_eq!(cfg.listen.to_string(), DEFAULT_LISTEN);
        assert!(!format!("{cfg:?}").contains("0123456789abcdef"));
        assert!(Cli::try_parse_from(["consentry", "serve", "--bootstrap-key", "short"]).is_err());
    }

    #[test]
    fn client_create_takes_comma_separated_lists() {
        let cli = Cli::try_parse_from([
            "consentry",
            "client",
            "create",
            "--id",
            "svc",
            "--tenants",
            "a,b",
            "--capabilities",
            "query,admin",
        ])
        .unwrap();
        let Command::Client(ClientCommand::Create {
            tenants,
            capabilities,
            ..
        }) = cli.command
        else {
            panic!()
        };
        assert_eq!(tenants, ["a", "b"]);
        assert_eq!(capabilities, ["query", "admin"]);
    }
}
