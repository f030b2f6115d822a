//! The `consentry` binary: parses the command line and hands over to the library.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use consentry::config::{Cli, ClientCommand, Command, TokenCommand};
use consentry::domain::{Capabilities, Capability, ClientId, TenantBounds};
use consentry::service::auth::{generate_key, hash_key};
use consentry::startup::{App, shutdown_signal};
use consentry::store::ClientWrites;

/// mimalloc: a request allocates and frees small blocks on whichever worker thread runs it, and
/// glibc's per-thread arenas then contend on their locks (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    small_pages_only();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("consentry: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(consentry_main())
}

/// Turns transparent huge pages off for this process, before anything is allocated on a worker
/// thread. mimalloc advises huge pages for the regions it reserves, so with THP in `madvise` or
/// `always` mode each region touched at all is backed by 2 MiB pages: an idle instance held 16
/// MiB of them (see BENCHMARKS.md, "Memory"). A failure only leaves the kernel's default.
fn small_pages_only() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
        eprintln!("consentry: transparent huge pages stay as the kernel has them: {e}");
    }
}

/// Parses the command line, starts logging and runs the command.
async fn consentry_main() -> ExitCode {
    let cli = Cli::parse_args();
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
            if let Some(addr) = app.http_addr() {
                eprintln!("AuthZEN at http://{addr}");
            }
            let scheme = if app.tls() { " (TLS)" } else { "" };
            eprintln!("consentry listening on {}{scheme}", app.local_addr());
            if let Some(key) = app.demo_key() {
                eprintln!(
                    "demo key (for examples only, never in production; it works once the demo world is loaded):"
                );
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
            let url = db.url("create").unwrap_or_else(|e| e.exit());
            let client_id = ClientId::parse("--id", &id)?;
            let tenants = TenantBounds::parse("--tenants", &tenants)?;
            let caps = capabilities
                .iter()
                .map(|c| Capability::parse("--capabilities", c.trim()))
                .collect::<Result<Vec<_>, _>>()?;
            let store = consentry::store::open(url, 1).await?;
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
        Command::Keygen { out } => keygen(out.as_deref()),
        Command::Token(TokenCommand::Verify {
            jwks,
            audience,
            issuer,
            tenant,
            app,
            resource,
            permission,
            token,
        }) => {
            let expected = expected(audience, issuer, tenant, app)?;
            verify_token(&jwks, &expected, resource.zip(permission), &token)
        }
        Command::Client(ClientCommand::Revoke { id, db }) => {
            let url = db.url("revoke").unwrap_or_else(|e| e.exit());
            let client_id = ClientId::parse("--id", &id)?;
            let store = consentry::store::open(url, 1).await?;
            store.revoke_client(None, &client_id).await?;
            eprintln!("revoked client {client_id}");
            Ok(())
        }
    }
}

/// `consentry keygen`: a new signing key on stdout, or in a new file only its owner may read.
fn keygen(out: Option<&std::path::Path>) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use std::io::Write as _;
    let pem = consentry::token::generate_pem()?;
    let Some(path) = out else {
        print!("{pem}");
        return Ok(());
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).with_context(|| {
        format!(
            "cannot create {} (an existing file is never overwritten)",
            path.display()
        )
    })?;
    file.write_all(pem.as_bytes())?;
    let keys = consentry::token::SigningKeys::parse(pem.as_bytes()).map_err(anyhow::Error::msg)?;
    eprintln!(
        "wrote a new signing key to {} (kid {})",
        path.display(),
        keys.signing_kid()
    );
    Ok(())
}

/// What `consentry token verify` expects of a token, from its flags: each checked, and a
/// problem names its flag.
fn expected(
    audience: String,
    issuer: String,
    tenant: Option<String>,
    app: Option<String>,
) -> anyhow::Result<consentry::token::Expected> {
    use consentry::domain::{AppId, TenantId};
    consentry::token::check_issuer(&issuer).map_err(|p| anyhow::anyhow!("--issuer {p}"))?;
    let mut expected = consentry::token::Expected::new(audience).with_issuer(issuer);
    if let Some(tenant) = tenant {
        expected = expected.with_tenant(TenantId::parse("--tenant", tenant)?.to_string());
    }
    if let Some(app) = app {
        expected = expected.with_app(AppId::parse("--app", app)?.to_string());
    }
    Ok(expected)
}

/// `consentry token verify`: the library's verifier, then the permission if one is asked for.
fn verify_token(
    jwks: &std::path::Path,
    expected: &consentry::token::Expected,
    check: Option<(String, String)>,
    token: &str,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use consentry::domain::{PermissionName, ResourcePath};
    let text = std::fs::read_to_string(jwks)
        .with_context(|| format!("cannot read --jwks {}", jwks.display()))?;
    let refused =
        |e: consentry::token::VerifyError| anyhow::anyhow!("token refused: {}: {e}", e.reason());
    let jwks = consentry::token::Jwks::parse(&text).map_err(refused)?;
    let claims = consentry::token::verify(token, &jwks, expected, std::time::SystemTime::now())
        .map_err(refused)?;
    if let Some((resource, permission)) = check {
        let path = ResourcePath::parse("--resource", resource)?;
        let permission = PermissionName::parse("--permission", &permission)?;
        if !claims.allows(&path, permission) {
            let held = claims
                .level_at(&path)
                .map_or_else(|| "no right".to_owned(), |r| r.to_string());
            anyhow::bail!(
                "token refused: PERMISSION_NOT_HELD: the token allows {held} at {path}; {permission} needs {}",
                permission.required_right()
            );
        }
    }
    println!("{}", serde_json::to_string_pretty(&claims)?);
    Ok(())
}
