//! The command line: `serve`, `migrate` and `client create|revoke`, each flag with its
//! environment variable and a documented default.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::store::backend::DEFAULT_DATABASE_URL;

mod ext_authz;
pub use ext_authz::ExtAuthzArgs;

/// Default gRPC listen address: loopback only, so nothing is exposed by accident.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";

/// Default largest request or response message: 4 MiB, tonic's own default for decoding.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// Default `--max-staleness`: how long cache hits may still be answered after the change log was
/// last read, so that a short database outage does not become an outage of every caller.
pub const DEFAULT_MAX_STALENESS: &str = "5s";

/// Default `--change-poll-interval`: how often the change log is read when no notification
/// arrives; it bounds how late another instance's write is seen.
pub const DEFAULT_CHANGE_POLL_INTERVAL: &str = "250ms";

/// Default `--tls-reload-interval`: how often the TLS files are re-read. cert-manager renews a
/// certificate days before it expires, so seconds of delay cost nothing, and a look is three small
/// file reads.
pub const DEFAULT_TLS_RELOAD_INTERVAL: &str = "10s";

/// Default `--token-issuer`: the `iss` of context tokens (and the issuer `token verify`
/// expects by default).
pub const DEFAULT_TOKEN_ISSUER: &str = crate::token::DEFAULT_ISSUER;

/// Default `--signing-key-reload-interval`: how often the signing key file is re-read. A rotation
/// prepends a key well ahead of using it elsewhere, so seconds of delay cost nothing.
pub const DEFAULT_SIGNING_KEY_RELOAD_INTERVAL: &str = "10s";

/// The health service's name that says only whether the process is alive (for liveness probes):
/// SERVING from start to exit, whatever the database does, so that an outage does not have every
/// instance restarted.
pub const LIVENESS_SERVICE: &str = "liveness";

/// Default `--db-max-connections`: enough for a busy instance's misses and writes, few enough
/// that several replicas stay under PostgreSQL's default `max_connections` of 100.
pub const DEFAULT_DB_MAX_CONNECTIONS: u32 = 16;

/// Default `--max-batch`: items in one CheckAccessBatch, enough for a page of results.
pub const DEFAULT_MAX_BATCH: usize = 100;

/// Default `--request-timeout-ms`: a caller waiting longer than 5 s has given up.
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 5_000;

/// Default `--max-concurrent-requests`: beyond it calls are shed rather than queued.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 1_024;

/// Default `--cache-mib`: sized for a sidecar; a central service raises it.
pub const DEFAULT_CACHE_MIB: u64 = 64;

/// Default `--cache-ttl-secs`: a safety net behind invalidation, long enough to cost nothing.
pub const DEFAULT_CACHE_TTL_SECS: u64 = 300;

/// Default `--change-listener`: LISTEN on Postgres, so other instances' writes arrive at once.
pub const DEFAULT_CHANGE_LISTENER: bool = true;

/// Default `--migrate`: a single process needs no separate migration step.
pub const DEFAULT_MIGRATE: bool = true;

/// Default `--shutdown-delay-ms`: long enough for a load balancer to see NOT_SERVING.
pub const DEFAULT_SHUTDOWN_DELAY_MS: u64 = 500;

/// Default `--shutdown-grace-ms`: twice the request timeout, so calls in flight can finish.
pub const DEFAULT_SHUTDOWN_GRACE_MS: u64 = 10_000;

/// A duration such as `5s`, `250ms` or `1m 30s`.
fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (write it like 5s or 250ms)"))
}

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

impl Cli {
    /// Parses `args` (the program's name first), noting a secret given on the command line
    /// rather than in the environment, which [`ServeConfig::validate`] refuses: every user of
    /// the machine can read a process's arguments (`ps`, `/proc/<pid>/cmdline`).
    pub fn try_parse_args<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::parser::ValueSource;
        use clap::{CommandFactory, FromArgMatches};
        let matches = Cli::command().try_get_matches_from(args)?;
        let mut cli = Cli::from_arg_matches(&matches)?;
        if let Command::Serve(config) = &mut cli.command {
            config.bootstrap_key_on_command_line = matches
                .subcommand_matches("serve")
                .and_then(|serve| serve.value_source("bootstrap_key"))
                == Some(ValueSource::CommandLine);
        }
        Ok(cli)
    }

    /// The process's command line ([`Cli::try_parse_args`]); exits with clap's usage error.
    pub fn parse_args() -> Cli {
        Cli::try_parse_args(std::env::args_os()).unwrap_or_else(|e| e.exit())
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gRPC server.
    Serve(Box<ServeConfig>),
    /// Apply pending database migrations and exit.
    Migrate(DatabaseArgs),
    /// Create or revoke a client directly in the database.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Write a new Ed25519 private key (PKCS#8 PEM) for `--signing-key-file`.
    Keygen {
        /// Write the key to this new file (mode 0600) instead of stdout; an existing file is
        /// never overwritten.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Work with context tokens.
    #[command(subcommand)]
    Token(TokenCommand),
}

/// `consentry token …`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Verify a context token offline: signature against a JWK set, expiry, audience, issuer,
    /// and, if asked, the tenant, the app and a permission at a resource. Prints the claims;
    /// exits 1 with the reason otherwise.
    Verify {
        /// The JWK set to trust (the `jwks` of GetSigningKeys, as a file).
        #[arg(long)]
        jwks: PathBuf,
        /// The audience this verifier is (the token's `aud` must be it).
        #[arg(long)]
        audience: String,
        /// The issuer the token's `iss` must be (the server's `--token-issuer`).
        #[arg(long, default_value = DEFAULT_TOKEN_ISSUER)]
        issuer: String,
        /// The tenant the token's `tid` must be; any tenant without it.
        #[arg(long)]
        tenant: Option<String>,
        /// The application the token's `app` must be; any application without it.
        #[arg(long)]
        app: Option<String>,
        /// A resource path to check `--permission` at.
        #[arg(long, requires = "permission")]
        resource: Option<String>,
        /// A level or fine-grained permission the token must allow at `--resource`.
        #[arg(long, requires = "resource")]
        permission: Option<String>,
        /// The token (compact JWS).
        token: String,
    },
}

/// Where the store is.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// Database URL: `postgres://…` for Postgres, `sqlite://path` for an embedded SQLite file
    /// (the default, created in the working directory).
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,
}

/// Where the store is, for the `client` commands: the deployment's own database, always named
/// (a default would make up an embedded file there and then, holding a key that works nowhere).
#[derive(Debug, Clone, Args)]
pub struct AdminDatabaseArgs {
    /// Database URL of the deployment's store: `postgres://…` (the runtime role suffices), or
    /// `sqlite://path` of the file the server uses. Required: this flag or `DATABASE_URL`.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
}

impl AdminDatabaseArgs {
    /// The URL given to `consentry client <command>`, or a usage error naming both ways to give
    /// it.
    pub fn url(&self, command: &str) -> Result<&str, clap::Error> {
        match self.database_url.as_deref() {
            Some(url) if !url.is_empty() => Ok(url),
            _ => {
                let mut cli = <Cli as clap::CommandFactory>::command();
                cli.build();
                let message = format!(
                    "`consentry client {command}` needs the deployment's database: pass \
                     --database-url or set DATABASE_URL (it never guesses one)"
                );
                let kind = clap::error::ErrorKind::MissingRequiredArgument;
                Err(
                    match cli
                        .find_subcommand_mut("client")
                        .and_then(|c| c.find_subcommand_mut(command))
                    {
                        Some(sub) => sub.error(kind, message),
                        None => cli.error(kind, message),
                    },
                )
            }
        }
    }
}

/// `consentry client …`: checks the schema is current and never migrates, so the runtime role
/// runs them.
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
        db: AdminDatabaseArgs,
    },
    /// Revoke a client's key.
    Revoke {
        /// The client's id.
        #[arg(long)]
        id: String,
        /// Where the store is.
        #[command(flatten)]
        db: AdminDatabaseArgs,
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
    /// A PostgreSQL hot standby that snapshot loads may read from when it has replayed far
    /// enough (repeatable; comma-separated in the variable). Never the primary's URL.
    #[arg(
        long = "database-read-url",
        env = "DATABASE_READ_URL",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub database_read_urls: Vec<String>,
    /// Address to serve Prometheus metrics on (`/metrics`); off when unset.
    #[arg(long, env = "CONSENTRY_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Creates the client `bootstrap` (every capability, every tenant) with this key if it does
    /// not exist. Taken from the environment only: on the command line it is refused.
    #[arg(
        long,
        env = "CONSENTRY_BOOTSTRAP_KEY",
        hide_env_values = true,
        hide = true
    )]
    pub bootstrap_key: Option<Secret>,
    /// Whether the bootstrap key was given on the command line (refused by `validate`).
    #[arg(skip)]
    pub bootstrap_key_on_command_line: bool,
    /// Load a small example world and print a key that works for it (only into a database that
    /// is empty or the demo's own; never Postgres without `--demo-allow-postgres`).
    #[arg(long)]
    pub demo: bool,
    /// Let `--demo` write to a Postgres database (still only an empty one or the demo's own);
    /// without `--demo` it does nothing.
    #[arg(long, env = "CONSENTRY_DEMO_ALLOW_POSTGRES")]
    pub demo_allow_postgres: bool,
    /// Log JSON lines instead of text.
    #[arg(long, env = "CONSENTRY_LOG_JSON")]
    pub log_json: bool,
    /// Database connections in the pool.
    #[arg(long, env = "CONSENTRY_DB_MAX_CONNECTIONS", default_value_t = DEFAULT_DB_MAX_CONNECTIONS)]
    pub db_max_connections: u32,
    /// Most items in one CheckAccessBatch.
    #[arg(long, env = "CONSENTRY_MAX_BATCH", default_value_t = DEFAULT_MAX_BATCH)]
    pub max_batch: usize,
    /// Per-request timeout, in milliseconds; a request past it gets DEADLINE_EXCEEDED.
    #[arg(long, env = "CONSENTRY_REQUEST_TIMEOUT_MS", default_value_t = DEFAULT_REQUEST_TIMEOUT_MS)]
    pub request_timeout_ms: u64,
    /// Requests served at once; beyond it, requests are shed with RESOURCE_EXHAUSTED.
    #[arg(long, env = "CONSENTRY_MAX_CONCURRENT_REQUESTS", default_value_t = DEFAULT_MAX_CONCURRENT_REQUESTS)]
    pub max_concurrent_requests: usize,
    /// Largest request message, in bytes.
    #[arg(long, env = "CONSENTRY_MAX_MESSAGE_BYTES", default_value_t = DEFAULT_MAX_MESSAGE_BYTES)]
    pub max_message_bytes: usize,
    /// Memory budget of the snapshot caches, in MiB (sized for a sidecar).
    #[arg(long, env = "CONSENTRY_CACHE_MIB", default_value_t = DEFAULT_CACHE_MIB)]
    pub cache_mib: u64,
    /// Longest a cached snapshot is kept, in seconds: a safety net behind invalidation.
    #[arg(long, env = "CONSENTRY_CACHE_TTL_SECS", default_value_t = DEFAULT_CACHE_TTL_SECS)]
    pub cache_ttl_secs: u64,
    /// How long after the last successful read of the change log cache hits may still be
    /// answered (through a database outage); past it every check is UNAVAILABLE and health
    /// says NOT_SERVING.
    #[arg(long, env = "CONSENTRY_MAX_STALENESS", default_value = DEFAULT_MAX_STALENESS, value_parser = duration)]
    pub max_staleness: Duration,
    /// How often the change log is read when no notification arrives.
    #[arg(long, env = "CONSENTRY_CHANGE_POLL_INTERVAL", default_value = DEFAULT_CHANGE_POLL_INTERVAL, value_parser = duration)]
    pub change_poll_interval: Duration,
    /// Whether to LISTEN for change notifications on Postgres (turn off behind a pooler in
    /// transaction mode; the poll alone then bounds how late changes are seen).
    #[arg(long, env = "CONSENTRY_CHANGE_LISTENER", default_value_t = DEFAULT_CHANGE_LISTENER, action = clap::ArgAction::Set)]
    pub change_listener: bool,
    /// Apply pending migrations at start. Turn off where a separate `consentry migrate` (a
    /// Kubernetes Job, with a role that may change the schema) runs them: serving then waits,
    /// NOT_SERVING, until the schema is current, and the runtime role needs no DDL right.
    #[arg(long, env = "CONSENTRY_MIGRATE", default_value_t = DEFAULT_MIGRATE, action = clap::ArgAction::Set)]
    pub migrate: bool,
    /// PEM certificate chain to serve gRPC over TLS with (re-read when the file changes).
    #[arg(long, env = "CONSENTRY_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `--tls-cert` (re-read when the file changes).
    #[arg(long, env = "CONSENTRY_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificates that clients must present a certificate from (mutual TLS).
    #[arg(long, env = "CONSENTRY_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,
    /// How often the TLS files are re-read; a change is used for new connections.
    #[arg(long, env = "CONSENTRY_TLS_RELOAD_INTERVAL", default_value = DEFAULT_TLS_RELOAD_INTERVAL, value_parser = duration)]
    pub tls_reload_interval: Duration,
    /// PEM file of one or more Ed25519 PKCS#8 private keys that sign context tokens: the first
    /// signs, all are published by GetSigningKeys (re-read when the file changes). Without it,
    /// IssueContextToken is FAILED_PRECONDITION.
    #[arg(long, env = "CONSENTRY_SIGNING_KEY_FILE")]
    pub signing_key_file: Option<PathBuf>,
    /// The `iss` of context tokens.
    #[arg(long, env = "CONSENTRY_TOKEN_ISSUER", default_value = DEFAULT_TOKEN_ISSUER)]
    pub token_issuer: String,
    /// How often the signing key file is re-read; a change signs new tokens with its first key.
    #[arg(long, env = "CONSENTRY_SIGNING_KEY_RELOAD_INTERVAL", default_value = DEFAULT_SIGNING_KEY_RELOAD_INTERVAL, value_parser = duration)]
    pub signing_key_reload_interval: Duration,
    /// Envoy's external authorization.
    #[command(flatten)]
    pub ext_authz: ExtAuthzArgs,
    /// Address to serve the OpenID AuthZEN Authorization API on (HTTP/1.1 and h2c, JSON); off
    /// when unset.
    #[arg(long, env = "CONSENTRY_HTTP_LISTEN")]
    pub http_listen: Option<SocketAddr>,
    /// The AuthZEN PDP identifier: the public base URL of `--http-listen` that clients reach,
    /// named in `/.well-known/authzen-configuration` (never taken from a request's `Host`).
    #[arg(long, env = "CONSENTRY_AUTHZEN_ISSUER_URL", alias = "authzen-base-url")]
    pub authzen_issuer_url: Option<String>,
    /// Address of a plaintext gRPC listener that serves only `grpc.health.v1.Health` (for
    /// Kubernetes probes, which cannot speak TLS); off when unset.
    #[arg(long, env = "CONSENTRY_HEALTH_LISTEN")]
    pub health_listen: Option<SocketAddr>,
    /// After SIGTERM, how long health says NOT_SERVING while requests are still accepted, so
    /// load balancers stop sending first, in milliseconds.
    #[arg(long, env = "CONSENTRY_SHUTDOWN_DELAY_MS", default_value_t = DEFAULT_SHUTDOWN_DELAY_MS)]
    pub shutdown_delay_ms: u64,
    /// How long in-flight requests may finish after SIGTERM, in milliseconds.
    #[arg(long, env = "CONSENTRY_SHUTDOWN_GRACE_MS", default_value_t = DEFAULT_SHUTDOWN_GRACE_MS)]
    pub shutdown_grace_ms: u64,
}

impl ServeConfig {
    /// A configuration with every default of `consentry serve`, serving on `listen` from
    /// `database_url`. The defaults are clap's own, from a parse of `consentry serve` with no
    /// flags in which no argument reads the environment: a `CONSENTRY_*` variable (or
    /// `DATABASE_URL`) of the calling process never changes what this returns.
    pub fn new(listen: SocketAddr, database_url: impl Into<String>) -> Self {
        let mut config = Self::defaults();
        config.listen = listen;
        config.db.database_url = database_url.into();
        config
    }

    /// The `serve` command as [`ServeConfig::new`] parses it: every argument's environment
    /// variable unset, so that only its default can fill it.
    fn without_environment() -> clap::Command {
        <Cli as clap::CommandFactory>::command()
            .mut_subcommand("serve", |serve| serve.mut_args(|arg| arg.env(None::<&str>)))
    }

    /// `consentry serve` with no flags and no environment.
    fn defaults() -> Self {
        use clap::FromArgMatches;
        let matches = Self::without_environment()
            .try_get_matches_from(["consentry", "serve"])
            .and_then(|all| match all.subcommand_matches("serve") {
                Some(serve) => ServeConfig::from_arg_matches(serve),
                None => Err(clap::Error::new(clap::error::ErrorKind::MissingSubcommand)),
            });
        // Every flag of `serve` has a default or is optional; a unit test parses them.
        matches.expect("`consentry serve` parses with no flags")
    }

    /// What is wrong with the read replicas' URLs: each must be a PostgreSQL URL other than the
    /// primary's, and the primary must be PostgreSQL too.
    fn read_url_problems(&self) -> Vec<String> {
        use crate::store::Backend;
        use crate::store::backend::redact;
        let mut problems = Vec::new();
        let primary = Backend::of_url(&self.db.database_url).ok();
        for url in &self.database_read_urls {
            let shown = redact(url.trim());
            let shown = crate::domain::error::quoted(&shown);
            match Backend::of_url(url.trim()) {
                Err(_) => problems.push(format!(
                    "--database-read-url {shown}: not a database URL (postgres://…)"
                )),
                Ok(Backend::Sqlite) => problems.push(format!(
                    "--database-read-url {shown}: read replicas are PostgreSQL hot standbys"
                )),
                Ok(Backend::Postgres) if url.trim() == self.db.database_url.trim() => {
                    problems.push(format!(
                        "--database-read-url {shown}: this is the primary's URL (--database-url); a read replica is a hot standby"
                    ))
                }
                Ok(Backend::Postgres) if primary == Some(Backend::Sqlite) => problems.push(
                    format!("--database-read-url {shown}: read replicas need a PostgreSQL primary, and --database-url is SQLite"),
                ),
                Ok(Backend::Postgres) => {
                    if crate::store::backend::parses_as_postgres(url.trim()).is_err() {
                        problems.push(format!(
                            "--database-read-url {shown}: not a valid PostgreSQL URL"
                        ));
                    }
                }
            }
        }
        problems
    }

    /// The TLS files, when TLS is configured.
    pub fn tls_files(&self) -> Option<crate::tls::TlsFiles> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(crate::tls::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: self.tls_client_ca.clone(),
            }),
            _ => None,
        }
    }

    /// The per-request timeout.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// Refuses settings that cannot work together and TLS files that cannot be used, naming the
    /// flags: every problem at once, before anything binds.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if self.change_poll_interval.is_zero() {
            problems.push("--change-poll-interval must be more than zero".to_owned());
        } else if self.max_staleness <= self.change_poll_interval {
            problems.push(format!(
                "--max-staleness ({}) must be longer than --change-poll-interval ({}), or the instance would stop answering between two polls",
                humantime::format_duration(self.max_staleness),
                humantime::format_duration(self.change_poll_interval)
            ));
        }
        // Zero would stop the server from doing anything useful; it is refused, not rounded up.
        let counts = [
            ("--request-timeout-ms", self.request_timeout_ms),
            ("--db-max-connections", u64::from(self.db_max_connections)),
            ("--max-batch", self.max_batch as u64),
            (
                "--max-concurrent-requests",
                self.max_concurrent_requests as u64,
            ),
            ("--max-message-bytes", self.max_message_bytes as u64),
            ("--cache-mib", self.cache_mib),
            ("--cache-ttl-secs", self.cache_ttl_secs),
        ];
        for (flag, value) in counts {
            if value == 0 {
                problems.push(format!("{flag} must be more than zero"));
            }
        }
        match crate::store::Backend::of_url(&self.db.database_url) {
            Err(e) => problems.push(format!("--database-url: {e}")),
            Ok(crate::store::Backend::Postgres) if self.demo && !self.demo_allow_postgres => {
                problems.push(format!(
                    "--demo refuses Postgres ({}): the demo writes a client with every capability on every tenant whose key is public (README), and Postgres is where real data lives. Use an SQLite file (sqlite://demo.db), or, for a throwaway Postgres database of the demo's own, add --demo-allow-postgres (CONSENTRY_DEMO_ALLOW_POSTGRES=true)",
                    crate::store::backend::redact(&self.db.database_url)
                ));
            }
            Ok(_) => {}
        }
        problems.extend(self.read_url_problems());
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => problems.push("--tls-cert needs --tls-key".to_owned()),
            (None, Some(_)) => problems.push("--tls-key needs --tls-cert".to_owned()),
            (None, None) if self.tls_client_ca.is_some() => {
                problems.push("--tls-client-ca needs --tls-cert and --tls-key".to_owned())
            }
            _ => {}
        }
        if let Some(files) = self.tls_files()
            && let Err(errors) = files.check()
        {
            problems.extend(errors.0.iter().map(ToString::to_string));
        }
        // Two listeners on one address: the second bind would fail after the first succeeded.
        let listeners = [
            ("--listen", Some(self.listen)),
            ("--health-listen", self.health_listen),
            ("--metrics-listen", self.metrics_listen),
            ("--http-listen", self.http_listen),
        ];
        for (i, (flag, addr)) in listeners.iter().enumerate() {
            for (other, other_addr) in &listeners[i + 1..] {
                if let (Some(a), Some(b)) = (addr, other_addr)
                    && a.port() != 0
                    && a.port() == b.port()
                    && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
                {
                    problems.push(format!("{flag} ({a}) and {other} ({b}) use the same port"));
                }
            }
        }
        if self.tls_reload_interval.is_zero() {
            problems.push("--tls-reload-interval must be more than zero".to_owned());
        }
        if let Some(path) = &self.signing_key_file
            && let Err(e) = crate::token::SigningKeys::read(path)
        {
            problems.push(e.to_string());
        }
        if self.bootstrap_key_on_command_line {
            problems.push(
                "--bootstrap-key: a key on the command line can be read by every user of the machine (ps, /proc); set CONSENTRY_BOOTSTRAP_KEY in the environment instead"
                    .to_owned(),
            );
        }
        if let Err(problem) = crate::token::check_issuer(&self.token_issuer) {
            problems.push(format!("--token-issuer {problem}"));
        }
        if self.demo && self.signing_key_file.is_some() {
            problems.push(
                "--demo refuses --signing-key-file (CONSENTRY_SIGNING_KEY_FILE): the demo client's key is public, so anyone could mint tokens signed with that key file. The demo signs context tokens with a throwaway key of its own, made at start and never written anywhere; serve without --demo to sign with a key file"
                    .to_owned(),
            );
        }
        if let Some(url) = &self.authzen_issuer_url {
            if let Err(problem) = issuer_url_problem(url) {
                problems.push(format!(
                    "--authzen-issuer-url {}: {problem}",
                    crate::domain::error::quoted(url)
                ));
            }
            if self.http_listen.is_none() {
                problems.push(
                    "--authzen-issuer-url needs --http-listen, where AuthZEN is served".to_owned(),
                );
            }
        }
        if let Err(ext_authz) = self.ext_authz_settings() {
            problems.extend(ext_authz);
        }
        if self.signing_key_reload_interval.is_zero() {
            problems.push("--signing-key-reload-interval must be more than zero".to_owned());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError(problems))
        }
    }
}

/// What is wrong with a PDP identifier: it must be an absolute `https` URL (or `http` to a
/// loopback host, for a PDP reached on the same machine) with no query or fragment.
fn issuer_url_problem(url: &str) -> Result<(), &'static str> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err("not an absolute URL (https://pdp.example.com)");
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let hostname = host.rsplit_once(':').map_or(host, |(h, _)| h);
    let loopback = matches!(hostname, "localhost" | "127.0.0.1" | "[::1]");
    match scheme {
        "https" => {}
        "http" if loopback => {}
        _ => return Err("the scheme must be https (http only for a loopback host)"),
    }
    if host.is_empty() {
        return Err("names no host");
    }
    if url.contains(['?', '#']) {
        return Err("must have no query or fragment");
    }
    if !url.is_ascii() || url.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err("must be printable ASCII");
    }
    Ok(())
}

/// Every problem found in a configuration, each naming its flag.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError(pub Vec<String>);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration:")?;
        for problem in &self.0 {
            write!(f, "\n  - {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests;
