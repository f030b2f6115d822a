//! The command line's tests: defaults, validation, and the README's flag table.

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
    assert_eq!(cfg.max_staleness, Duration::from_secs(5));
    assert_eq!(cfg.change_poll_interval, Duration::from_millis(250));
    assert!(cfg.change_listener);
    cfg.validate().unwrap();
    let new = ServeConfig::new(cfg.listen, DEFAULT_DATABASE_URL);
    assert_eq!(
        (
            new.max_staleness,
            new.change_poll_interval,
            new.change_listener
        ),
        (
            cfg.max_staleness,
            cfg.change_poll_interval,
            cfg.change_listener
        ),
        "ServeConfig::new has the command line's defaults"
    );
    assert!(!format!("{cfg:?}").contains("0123456789abcdef"));
    assert!(Cli::try_parse_from(["consentry", "serve", "--bootstrap-key", "short"]).is_err());
}

#[test]
fn new_has_every_default_of_the_command_line() {
    let listen: SocketAddr = ([127, 0, 0, 1], 7).into();
    let cfg = ServeConfig::new(listen, "sqlite://elsewhere.db");
    assert_eq!(cfg.listen, listen);
    assert_eq!(cfg.db.database_url, "sqlite://elsewhere.db");
    let counts = [
        (
            cfg.db_max_connections as u64,
            DEFAULT_DB_MAX_CONNECTIONS as u64,
        ),
        (cfg.max_batch as u64, DEFAULT_MAX_BATCH as u64),
        (cfg.request_timeout_ms, DEFAULT_REQUEST_TIMEOUT_MS),
        (
            cfg.max_concurrent_requests as u64,
            DEFAULT_MAX_CONCURRENT_REQUESTS as u64,
        ),
        (
            cfg.max_message_bytes as u64,
            DEFAULT_MAX_MESSAGE_BYTES as u64,
        ),
        (cfg.cache_mib, DEFAULT_CACHE_MIB),
        (cfg.cache_ttl_secs, DEFAULT_CACHE_TTL_SECS),
        (cfg.shutdown_delay_ms, DEFAULT_SHUTDOWN_DELAY_MS),
        (cfg.shutdown_grace_ms, DEFAULT_SHUTDOWN_GRACE_MS),
    ];
    for (i, (got, default)) in counts.into_iter().enumerate() {
        assert_eq!(got, default, "count {i}");
    }
    let durations = [
        (cfg.max_staleness, DEFAULT_MAX_STALENESS),
        (cfg.change_poll_interval, DEFAULT_CHANGE_POLL_INTERVAL),
        (cfg.tls_reload_interval, DEFAULT_TLS_RELOAD_INTERVAL),
        (
            cfg.signing_key_reload_interval,
            DEFAULT_SIGNING_KEY_RELOAD_INTERVAL,
        ),
    ];
    for (got, default) in durations {
        assert_eq!(got, duration(default).unwrap(), "{default}");
    }
    assert_eq!(
        (cfg.change_listener, cfg.migrate),
        (DEFAULT_CHANGE_LISTENER, DEFAULT_MIGRATE)
    );
    assert_eq!(cfg.token_issuer, DEFAULT_TOKEN_ISSUER);
    assert!(cfg.metrics_listen.is_none() && cfg.health_listen.is_none());
    assert!(cfg.bootstrap_key.is_none() && !cfg.bootstrap_key_on_command_line);
    assert!(!cfg.demo && !cfg.demo_allow_postgres && !cfg.log_json);
    assert!(cfg.tls_cert.is_none() && cfg.tls_key.is_none() && cfg.tls_client_ca.is_none());
    assert!(cfg.signing_key_file.is_none());
    cfg.validate().unwrap();
}

/// Every variable `consentry serve` reads, with a value it accepts that is no default.
const EVERY_VARIABLE: &[(&str, &str)] = &[
    ("CONSENTRY_LISTEN", "127.0.0.1:7"),
    ("DATABASE_URL", "postgres://elsewhere/db"),
    ("DATABASE_READ_URL", "postgres://standby/db"),
    ("CONSENTRY_METRICS_LISTEN", "127.0.0.1:8"),
    (
        "CONSENTRY_BOOTSTRAP_KEY",
        "a-bootstrap-key-from-the-environment-0123",
    ),
    ("CONSENTRY_DEMO_ALLOW_POSTGRES", "true"),
    ("CONSENTRY_LOG_JSON", "true"),
    ("CONSENTRY_DB_MAX_CONNECTIONS", "7"),
    ("CONSENTRY_MAX_BATCH", "7"),
    ("CONSENTRY_REQUEST_TIMEOUT_MS", "7"),
    ("CONSENTRY_MAX_CONCURRENT_REQUESTS", "7"),
    ("CONSENTRY_MAX_MESSAGE_BYTES", "7"),
    ("CONSENTRY_CACHE_MIB", "7"),
    ("CONSENTRY_CACHE_TTL_SECS", "7"),
    ("CONSENTRY_MAX_STALENESS", "7s"),
    ("CONSENTRY_CHANGE_POLL_INTERVAL", "7s"),
    ("CONSENTRY_CHANGE_LISTENER", "false"),
    ("CONSENTRY_MIGRATE", "false"),
    ("CONSENTRY_TLS_CERT", "/elsewhere/cert.pem"),
    ("CONSENTRY_TLS_KEY", "/elsewhere/key.pem"),
    ("CONSENTRY_TLS_CLIENT_CA", "/elsewhere/ca.pem"),
    ("CONSENTRY_TLS_RELOAD_INTERVAL", "7s"),
    ("CONSENTRY_SIGNING_KEY_FILE", "/elsewhere/keys.pem"),
    ("CONSENTRY_TOKEN_ISSUER", "elsewhere"),
    ("CONSENTRY_SIGNING_KEY_RELOAD_INTERVAL", "7s"),
    ("CONSENTRY_EXT_AUTHZ", "true"),
    ("CONSENTRY_EXT_AUTHZ_CONFIG", "/nowhere/ext-authz.toml"),
    ("CONSENTRY_EXT_AUTHZ_RESOURCE_PREFIX", "/x"),
    ("CONSENTRY_EXT_AUTHZ_METHODS", "GET=READ"),
    ("CONSENTRY_EXT_AUTHZ_TENANT_HEADER", "x-t"),
    ("CONSENTRY_EXT_AUTHZ_APP_HEADER", "x-a"),
    ("CONSENTRY_EXT_AUTHZ_USER_HEADER", "x-u"),
    ("CONSENTRY_EXT_AUTHZ_HEADERS_STRIPPED", "true"),
    ("CONSENTRY_HTTP_LISTEN", "127.0.0.1:10"),
    ("CONSENTRY_AUTHZEN_ISSUER_URL", "https://pdp.example.com"),
    ("CONSENTRY_HEALTH_LISTEN", "127.0.0.1:9"),
    ("CONSENTRY_SHUTDOWN_DELAY_MS", "7"),
    ("CONSENTRY_SHUTDOWN_GRACE_MS", "7"),
];

/// Set in the child process of [`no_variable_of_the_environment_reaches_new`]: what `new`
/// returned in its parent, whose environment has none of [`EVERY_VARIABLE`].
const EXPECTED_NEW: &str = "CONSENTRY_TEST_EXPECTED_NEW";

/// `ServeConfig::new` as a test compares it.
fn new_for_comparison() -> String {
    format!(
        "{:?}",
        ServeConfig::new(([127, 0, 0, 1], 0).into(), "sqlite://x.db")
    )
}

#[test]
fn new_parses_a_command_whose_arguments_read_no_variable() {
    let serve_args = |command: &mut clap::Command| -> Vec<(String, bool)> {
        command
            .find_subcommand_mut("serve")
            .unwrap()
            .get_arguments()
            .map(|a| (a.get_id().to_string(), a.get_env().is_some()))
            .collect()
    };
    let real = serve_args(&mut <Cli as clap::CommandFactory>::command());
    let env_names: Vec<String> = <Cli as clap::CommandFactory>::command()
        .find_subcommand_mut("serve")
        .unwrap()
        .get_arguments()
        .filter_map(|a| a.get_env().map(|e| e.to_string_lossy().into_owned()))
        .collect();
    let listed: Vec<&str> = EVERY_VARIABLE.iter().map(|(name, _)| *name).collect();
    assert_eq!(
        env_names, listed,
        "EVERY_VARIABLE lists what serve reads, in order"
    );
    let without = serve_args(&mut ServeConfig::without_environment());
    assert_eq!(real.len(), without.len());
    assert!(without.iter().all(|(_, env)| !env), "{without:?}");
}

#[test]
fn no_variable_of_the_environment_reaches_new() {
    if let Some(expected) = std::env::var_os(EXPECTED_NEW) {
        // The child: every variable of EVERY_VARIABLE is set, and the real command line reads
        // them, but `new` does not.
        let Command::Serve(real) = Cli::try_parse_from(["consentry", "serve"]).unwrap().command
        else {
            panic!("not serve")
        };
        assert_eq!(real.max_batch, 7, "the variables are set in the child");
        assert_eq!(new_for_comparison(), expected.to_string_lossy());
        return;
    }
    let mut child = std::process::Command::new(std::env::current_exe().unwrap());
    child
        .args([
            "--exact",
            "config::tests::no_variable_of_the_environment_reaches_new",
            "--nocapture",
        ])
        .env(EXPECTED_NEW, new_for_comparison());
    for (name, value) in EVERY_VARIABLE {
        child.env(name, value);
    }
    let out = child.output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("1 passed"), "the child ran the test: {said}");
}

#[test]
fn the_bootstrap_key_is_taken_from_the_environment_never_the_command_line() {
    let key = "0123456789abcdef-secret-0123456789";
    let serve = |cli: Cli| match cli.command {
        Command::Serve(cfg) => cfg,
        _ => panic!("not serve"),
    };
    let on_argv =
        serve(Cli::try_parse_args(["consentry", "serve", "--bootstrap-key", key]).unwrap());
    let problems = on_argv.validate().unwrap_err().0;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("CONSENTRY_BOOTSTRAP_KEY"),
        "{problems:?}"
    );
    assert!(
        !problems[0].contains(key),
        "the key is not repeated: {problems:?}"
    );
    // The flag is not advertised.
    let help = <Cli as clap::CommandFactory>::command()
        .find_subcommand_mut("serve")
        .unwrap()
        .render_help()
        .to_string();
    assert!(!help.contains("--bootstrap-key"), "{help}");
    // From the environment it is taken as it always was.
    let mut from_env = serve(Cli::try_parse_args(["consentry", "serve"]).unwrap());
    from_env.bootstrap_key = Some(key.parse().unwrap());
    from_env.validate().unwrap();
}

#[test]
fn durations_parse_and_settings_that_cannot_work_are_refused() {
    let serve = |args: &[&str]| {
        let mut all = vec!["consentry", "serve"];
        all.extend_from_slice(args);
        match Cli::try_parse_from(all).map(|c| c.command) {
            Ok(Command::Serve(cfg)) => Ok(*cfg),
            Ok(_) => panic!("not serve"),
            Err(e) => Err(e.to_string()),
        }
    };
    let cfg = serve(&[
        "--max-staleness",
        "1m 30s",
        "--change-poll-interval",
        "100ms",
    ])
    .unwrap();
    assert_eq!(cfg.max_staleness, Duration::from_secs(90));
    assert_eq!(cfg.change_poll_interval, Duration::from_millis(100));
    assert!(
        serve(&["--max-staleness", "five"])
            .unwrap_err()
            .contains("5s")
    );
    let cfg = serve(&["--max-staleness", "200ms"]).unwrap();
    let err = cfg.validate().unwrap_err().to_string();
    assert!(err.contains("--max-staleness"), "{err}");
    let cfg = serve(&["--change-listener", "false", "--database-url", "mysql://x"]).unwrap();
    assert!(!cfg.change_listener);
    assert!(cfg.validate().is_err());
}

#[test]
fn the_default_durations_parse() {
    for text in [
        DEFAULT_MAX_STALENESS,
        DEFAULT_CHANGE_POLL_INTERVAL,
        DEFAULT_TLS_RELOAD_INTERVAL,
        DEFAULT_SIGNING_KEY_RELOAD_INTERVAL,
    ] {
        assert!(duration(text).is_ok_and(|d| !d.is_zero()), "{text}");
    }
}

#[test]
fn zero_is_refused_not_rounded_up() {
    let flags = [
        "--request-timeout-ms",
        "--db-max-connections",
        "--max-batch",
        "--max-concurrent-requests",
        "--max-message-bytes",
        "--cache-mib",
        "--cache-ttl-secs",
    ];
    let mut args = vec!["consentry", "serve"];
    for flag in flags {
        args.extend([flag, "0"]);
    }
    let Command::Serve(cfg) = Cli::try_parse_from(args).unwrap().command else {
        panic!("not serve")
    };
    let problems = cfg.validate().unwrap_err().0;
    for flag in flags {
        assert!(
            problems.iter().any(|p| p.starts_with(flag)),
            "{flag} in {problems:?}"
        );
    }
    assert_eq!(problems.len(), flags.len(), "{problems:?}");
}

/// The README's table of `serve` flags: every row's variable and default are the command
/// line's, and every flag of `serve` has a row.
#[test]
fn the_readme_table_is_the_command_line() {
    use clap::CommandFactory;
    let readme = include_str!("../../README.md");
    let command = Cli::command();
    let serve = command.find_subcommand("serve").unwrap();
    let mut failures = Vec::new();
    let mut seen = Vec::new();
    for row in readme
        .lines()
        .filter(|l| l.starts_with("| `--") || l.starts_with("| |"))
    {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let (flags, envs, default) = (cells[1], cells[2], cells[3]);
        let names = |cell: &str| -> Vec<String> {
            cell.split(',')
                .map(|n| n.trim().trim_matches('`').to_owned())
                .filter(|n| !n.is_empty())
                .collect()
        };
        for (i, env) in names(envs).into_iter().enumerate() {
            let Some(arg) = serve
                .get_arguments()
                .find(|a| a.get_env().is_some_and(|e| e == env.as_str()))
            else {
                failures.push(format!("{env}: not a variable of serve"));
                continue;
            };
            seen.push(arg.get_id().to_string());
            if let Some(flag) = names(flags).get(i)
                && Some(flag.trim_start_matches("--")) != arg.get_long()
            {
                failures.push(format!("{flag}: its variable is not {env}"));
            }
            let defaults: Vec<String> = arg
                .get_default_values()
                .iter()
                .map(|v| v.to_string_lossy().into_owned())
                .collect();
            let written = default.trim_matches('`');
            let agrees = match defaults.as_slice() {
                [] => matches!(written, "off" | "unset"),
                [d] if d == "false" => written == "off" || written == "false",
                [d] => d == written,
                _ => false,
            };
            if !agrees {
                failures.push(format!(
                    "{env}: README says {written:?}, serve says {defaults:?}"
                ));
            }
        }
    }
    for arg in serve.get_arguments() {
        if arg.get_env().is_some() && !seen.contains(&arg.get_id().to_string()) {
            failures.push(format!("--{}: no README row", arg.get_id()));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn an_unusable_signing_key_file_is_reported_with_every_other_problem() {
    let dir = std::env::temp_dir().join(format!("consentry-config-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let not_pem = dir.join("not.pem");
    std::fs::write(&not_pem, "not a key").unwrap();
    let good = dir.join("good.pem");
    std::fs::write(&good, crate::token::generate_pem().unwrap()).unwrap();
    let serve = |key: &std::path::Path, extra: &[&str]| {
        let mut args = vec![
            "consentry",
            "serve",
            "--signing-key-file",
            key.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let Command::Serve(cfg) = Cli::try_parse_from(args).unwrap().command else {
            panic!("not serve")
        };
        cfg.validate()
    };
    serve(&good, &[]).unwrap();
    // The demo's key is public: it never signs with a key file.
    let demo = serve(&good, &["--demo"]).unwrap_err().0;
    assert_eq!(demo.len(), 1, "{demo:?}");
    assert!(
        demo[0].starts_with("--demo refuses --signing-key-file"),
        "{demo:?}"
    );
    for bad in [dir.join("missing.pem"), not_pem] {
        let problems = serve(&bad, &["--max-batch", "0", "--token-issuer", ""])
            .unwrap_err()
            .0;
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("--signing-key-file: ")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.starts_with("--token-issuer")),
            "{problems:?}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
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

#[test]
fn read_replica_urls_are_repeatable_and_each_is_checked() {
    let serve = |args: &[&str]| {
        let all = [&["consentry", "serve"][..], args].concat();
        match Cli::try_parse_from(all).unwrap().command {
            Command::Serve(cfg) => cfg,
            _ => panic!("not serve"),
        }
    };
    let primary = "postgres://app@db:5432/consentry";
    let good = serve(&[
        "--database-url",
        primary,
        "--database-read-url",
        "postgres://app@standby-1:5432/consentry",
        "--database-read-url",
        "postgres://app@standby-2:5432/consentry",
    ]);
    assert_eq!(good.database_read_urls.len(), 2);
    good.validate().unwrap();

    let bad = serve(&[
        "--database-url",
        primary,
        "--database-read-url",
        "mysql://app@db/consentry",
        "--database-read-url",
        "sqlite://replica.db",
        "--database-read-url",
        primary,
        "--database-read-url",
        "postgres://app:hunter2@standby:notaport/consentry",
    ]);
    let problems = bad.validate().unwrap_err().0;
    assert_eq!(problems.len(), 4, "{problems:?}");
    for (problem, words) in problems.iter().zip([
        "not a database URL",
        "PostgreSQL hot standbys",
        "the primary's URL",
        "not a valid PostgreSQL URL",
    ]) {
        assert!(problem.starts_with("--database-read-url "), "{problem}");
        assert!(problem.contains(words), "{problem}");
        assert!(!problem.contains("hunter2"), "no password: {problem}");
    }

    let on_sqlite = serve(&[
        "--database-url",
        "sqlite://consentry.db",
        "--database-read-url",
        "postgres://app@standby:5432/consentry",
    ]);
    let problems = on_sqlite.validate().unwrap_err().0;
    assert!(
        problems
            .iter()
            .any(|p| p.contains("need a PostgreSQL primary")),
        "{problems:?}"
    );
}

/// `serve` with `args`, parsed with no environment.
fn serve_with(args: &[&str]) -> ServeConfig {
    use clap::FromArgMatches;
    let mut all = vec!["consentry", "serve"];
    all.extend_from_slice(args);
    let matches = ServeConfig::without_environment()
        .try_get_matches_from(all)
        .unwrap();
    ServeConfig::from_arg_matches(matches.subcommand_matches("serve").unwrap()).unwrap()
}

#[test]
fn ext_authz_is_off_unless_asked_for_and_its_flags_win_over_its_file() {
    assert_eq!(serve_with(&[]).ext_authz_settings(), Ok(None));
    let on = serve_with(&["--ext-authz"])
        .ext_authz_settings()
        .unwrap()
        .unwrap();
    assert_eq!(on, crate::domain::mesh::ExtAuthzSettings::default());

    let dir = std::env::temp_dir().join(format!("consentry-ext-authz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("settings.yaml");
    std::fs::write(
        &file,
        "resource_prefix: /docs\nmethods: {GET: READ}\nheaders: {mesh_strips_client_copies: true, user_id: x-user}\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let from_file = serve_with(&["--ext-authz-config", path]);
    let settings = from_file.ext_authz_settings().unwrap().unwrap();
    assert_eq!(settings.resource_prefix.as_str(), "/docs");
    assert_eq!(settings.methods.permission("POST"), None);
    assert_eq!(settings.headers.user_id.as_deref(), Some("x-user"));
    let flags = serve_with(&[
        "--ext-authz-config",
        path,
        "--ext-authz-resource-prefix",
        "/other",
        "--ext-authz-methods",
        "GET=WRITE,POST=EDIT_ITEMS",
    ]);
    let settings = flags.ext_authz_settings().unwrap().unwrap();
    assert_eq!(settings.resource_prefix.as_str(), "/other");
    assert!(settings.methods.permission("POST").is_some());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn ext_authz_settings_that_cannot_work_are_refused_naming_each() {
    let problems = |args: &[&str]| {
        let config = serve_with(args);
        let Err(ConfigError(problems)) = config.validate() else {
            panic!("{args:?} is refused");
        };
        problems.join("\n")
    };
    let p = problems(&["--ext-authz", "--ext-authz-user-header", "x-user"]);
    assert!(p.contains("--ext-authz-headers-stripped"), "{p}");
    let p = problems(&[
        "--ext-authz",
        "--ext-authz-headers-stripped",
        "--ext-authz-tenant-header",
        "X-Tenant",
        "--ext-authz-app-header",
        "x-consentry-app",
    ]);
    assert!(p.contains("--ext-authz-tenant-header \"X-Tenant\""), "{p}");
    assert!(
        p.contains("--ext-authz-app-header \"x-consentry-app\""),
        "{p}"
    );
    let p = problems(&["--ext-authz", "--ext-authz-methods", "GET"]);
    assert!(p.contains("METHOD=PERMISSION"), "{p}");
    let p = problems(&["--ext-authz", "--ext-authz-methods", "get=READ"]);
    assert!(p.contains("upper case"), "{p}");
    let p = problems(&["--ext-authz", "--ext-authz-methods", "GET=READS"]);
    assert!(p.contains("--ext-authz-methods"), "{p}");
    let p = problems(&["--ext-authz", "--ext-authz-resource-prefix", "docs"]);
    assert!(p.contains("--ext-authz-resource-prefix"), "{p}");
    let p = problems(&["--ext-authz-config", "/nowhere/settings.toml"]);
    assert!(p.contains("cannot be read"), "{p}");
    let p = problems(&["--ext-authz-config", "/nowhere/settings.json"]);
    assert!(p.contains(".toml, .yaml or .yml"), "{p}");

    let dir = std::env::temp_dir().join(format!("consentry-ext-authz-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text, expected) in [
        ("typo.toml", "resource_prefx = \"/\"\n", "resource_prefx"),
        (
            "app.toml",
            "[principals]\n\"spiffe://a\" = \"not an app\"\n",
            "principals",
        ),
        (
            "token.toml",
            "[context_token]\naudience = \"api\"\n",
            "--signing-key-file",
        ),
        (
            "ttl.yaml",
            "context_token: {audience: api, ttl: 2h}\n",
            "context_token.ttl",
        ),
        (
            "claims.yaml",
            "claims: {namespace: \"\", user_id: sub}\n",
            "claims.namespace",
        ),
    ] {
        let file = dir.join(name);
        std::fs::write(&file, text).unwrap();
        let p = problems(&["--ext-authz-config", file.to_str().unwrap()]);
        assert!(p.contains(expected), "{name}: {p}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_authzen_identifier_is_an_https_url_served_by_the_http_listener() {
    let ok = serve_with(&[
        "--http-listen",
        "127.0.0.1:0",
        "--authzen-issuer-url",
        "https://pdp.example.com/tenant1",
    ]);
    ok.validate().unwrap();
    let alias = serve_with(&[
        "--http-listen",
        "127.0.0.1:0",
        "--authzen-base-url",
        "http://localhost:8080",
    ]);
    assert_eq!(
        alias.authzen_issuer_url.as_deref(),
        Some("http://localhost:8080")
    );
    alias.validate().unwrap();
    for (url, problem) in [
        ("pdp.example.com", "not an absolute URL"),
        ("http://pdp.example.com", "https"),
        ("https://pdp.example.com?x=1", "no query or fragment"),
        ("https://", "no host"),
    ] {
        let config = serve_with(&["--http-listen", "127.0.0.1:0", "--authzen-issuer-url", url]);
        let Err(ConfigError(problems)) = config.validate() else {
            panic!("{url} is refused");
        };
        assert!(
            problems.iter().any(|p| p.contains(problem)),
            "{url}: {problems:?}"
        );
    }
    let without_listener = serve_with(&["--authzen-issuer-url", "https://pdp.example.com"]);
    let Err(ConfigError(problems)) = without_listener.validate() else {
        panic!("an identifier without a listener is refused");
    };
    assert!(
        problems.iter().any(|p| p.contains("needs --http-listen")),
        "{problems:?}"
    );
}
