//! TLS and mutual TLS on the gRPC listener, with certificates made for each test (rcgen): a client
//! that trusts the CA is served; without a client certificate, or with one from another CA, a
//! mutual-TLS server refuses the connection; a certificate replaced on disk is served to new
//! connections while open ones carry on; bad files are configuration errors before anything binds.

use std::path::Path;
use std::time::Duration;

use consentry::config::{LIVENESS_SERVICE, ServeConfig};
use consentry::proto::GetAppScopesRequest;
use consentry::proto::permission_service_client::PermissionServiceClient;
use consentry::reload::Reload;
use consentry::tls::{Tls, TlsFiles};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use crate::support::calls::req;
use crate::support::db::TestDb;
use crate::support::dir::TempDir as Dir;
use crate::support::server::{BOOTSTRAP_KEY, BinaryServer, TestServer, config, eventually};

/// A certificate authority made for a test.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its key, in PEM.
struct Leaf {
    cert: String,
    key: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Ca { issuer }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    fn leaf(&self, names: &[&str], usage: ExtendedKeyUsagePurpose) -> Leaf {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    fn server(&self) -> Leaf {
        self.leaf(
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    fn client(&self, name: &str) -> Leaf {
        self.leaf(&[name], ExtendedKeyUsagePurpose::ClientAuth)
    }
}

/// The server's files written into `dir`: `server.crt`, `server.key` and, if given, `client-ca.crt`.
fn write_files(dir: &Dir, server: &Leaf, client_ca: Option<&Ca>) -> TlsFiles {
    // The key first, then the certificate: a reload in between sees a mismatch and keeps the
    // previous pair.
    let key = dir.write("server.key", &server.key);
    let cert = dir.write("server.crt", &server.cert);
    TlsFiles {
        cert,
        key,
        client_ca: client_ca.map(|ca| dir.write("client-ca.crt", &ca.pem())),
    }
}

/// A test server configuration serving TLS from `files`, with a plaintext health listener.
fn tls_config(db: &TestDb, files: &TlsFiles) -> ServeConfig {
    let mut config = config(db);
    config.tls_cert = Some(files.cert.clone());
    config.tls_key = Some(files.key.clone());
    config.tls_client_ca = files.client_ca.clone();
    config.tls_reload_interval = Duration::from_millis(50);
    config.health_listen = Some(([127, 0, 0, 1], 0).into());
    config
}

/// Connects over TLS to `addr`, trusting `ca` and presenting `identity` if given.
async fn connect(
    addr: std::net::SocketAddr,
    ca: &Ca,
    identity: Option<&Leaf>,
) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca.pem()))
        .domain_name("localhost");
    if let Some(leaf) = identity {
        tls = tls.identity(Identity::from_pem(&leaf.cert, &leaf.key));
    }
    Channel::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
}

/// Health of the whole server over `channel`: `Ok(status)` or the call's error code.
async fn health(channel: Channel) -> Result<i32, Code> {
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map(|r| r.into_inner().status)
        .map_err(|s| s.code())
}

/// An authenticated PermissionService call over `channel`: the app is unknown, so NOT_FOUND
/// proves the request went all the way through.
async fn call(channel: Channel) -> Code {
    let request = GetAppScopesRequest {
        tenant_id: "nobody".into(),
        app_id: "nothing".into(),
        ..Default::default()
    };
    match PermissionServiceClient::new(channel)
        .get_app_scopes(req(request, BOOTSTRAP_KEY, None))
        .await
    {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

/// Whether a connection to `addr` trusting `ca` (presenting `identity`) can answer a call: a
/// refused handshake can surface at connect or at the first call, depending on TLS version.
async fn served(addr: std::net::SocketAddr, ca: &Ca, identity: Option<&Leaf>) -> bool {
    match connect(addr, ca, identity).await {
        Ok(channel) => health(channel).await == Ok(1),
        Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_a_client_that_trusts_the_ca_and_only_over_tls() {
    let db = TestDb::sqlite().await;
    let dir = Dir::new("tls");
    let ca = Ca::new("consentry test ca");
    let files = write_files(&dir, &ca.server(), None);
    let server = TestServer::start_with(tls_config(&db, &files)).await;

    let channel = connect(server.addr, &ca, None).await.expect("TLS connects");
    assert_eq!(health(channel.clone()).await, Ok(1), "SERVING over TLS");
    assert_eq!(call(channel).await, Code::NotFound, "a real call over TLS");

    // A plaintext client gets nothing from the TLS port.
    let plaintext = Channel::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5))
        .connect()
        .await;
    if let Ok(channel) = plaintext {
        assert!(health(channel).await.is_err(), "plaintext is not served");
    }
    // A client that trusts another CA refuses the server.
    assert!(!served(server.addr, &Ca::new("another ca"), None).await);

    // The plaintext health listener answers readiness and liveness, and nothing else.
    let probe = crate::support::server::connect(server.health_addr.unwrap()).await;
    assert_eq!(health(probe.clone()).await, Ok(1));
    let liveness = HealthClient::new(probe.clone())
        .check(HealthCheckRequest {
            service: LIVENESS_SERVICE.into(),
        })
        .await
        .unwrap();
    assert_eq!(liveness.into_inner().status, 1, "liveness SERVING");
    assert_eq!(
        call(probe).await,
        Code::Unimplemented,
        "the health listener serves nothing but health"
    );
    server.stop().await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_refuses_clients_without_a_certificate_or_from_another_ca() {
    let db = TestDb::sqlite().await;
    let dir = Dir::new("tls");
    let ca = Ca::new("consentry test ca");
    let clients = Ca::new("client ca");
    let files = write_files(&dir, &ca.server(), Some(&clients));
    let server = TestServer::start_with(tls_config(&db, &files)).await;

    let good = clients.client("billing-service");
    let channel = connect(server.addr, &ca, Some(&good))
        .await
        .expect("a client with a certificate from the client CA connects");
    assert_eq!(call(channel).await, Code::NotFound, "and is served");

    assert!(
        !served(server.addr, &ca, None).await,
        "a client without a certificate is refused"
    );
    let stranger = Ca::new("another ca").client("billing-service");
    assert!(
        !served(server.addr, &ca, Some(&stranger)).await,
        "a client with a certificate from another CA is refused"
    );
    // The server's own CA is not the client CA: its certificates are no passport either.
    assert!(
        !served(server.addr, &ca, Some(&ca.client("billing-service"))).await,
        "a client certificate from the server's CA is refused"
    );
    server.stop().await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_replaced_on_disk_is_served_to_new_connections_without_a_restart() {
    let db = TestDb::sqlite().await;
    let dir = Dir::new("tls");
    let old_ca = Ca::new("old ca");
    let files = write_files(&dir, &old_ca.server(), None);
    let server = TestServer::start_with(tls_config(&db, &files)).await;
    let open = connect(server.addr, &old_ca, None).await.unwrap();
    assert_eq!(health(open.clone()).await, Ok(1));

    // The rotation: a certificate from a new CA, written in place.
    let new_ca = Ca::new("new ca");
    write_files(&dir, &new_ca.server(), None);
    eventually(Duration::from_secs(10), || async {
        served(server.addr, &new_ca, None).await
    })
    .await;
    assert!(
        !served(server.addr, &old_ca, None).await,
        "new connections get the new certificate"
    );
    assert_eq!(
        health(open).await,
        Ok(1),
        "a connection opened before the rotation carries on"
    );
    server.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn a_rotation_that_cannot_be_used_keeps_the_previous_certificate() {
    let dir = Dir::new("tls");
    let ca = Ca::new("ca");
    let first = ca.server();
    let files = write_files(&dir, &first, None);
    let tls = Tls::load(files.clone()).unwrap();
    assert_eq!(tls.reload(), Reload::Unchanged);

    // Half a rotation: the new certificate is there, its key not yet.
    let second = ca.server();
    dir.write("server.crt", &second.cert);
    assert_eq!(tls.reload(), Reload::Refused, "a key that does not match");
    dir.write("server.crt", "not a certificate");
    assert_eq!(tls.reload(), Reload::Refused, "a file that is not PEM");
    std::fs::remove_file(&files.key).unwrap();
    assert_eq!(tls.reload(), Reload::Refused, "a missing file");

    // The rotation completes.
    dir.write("server.key", &second.key);
    dir.write("server.crt", &second.cert);
    assert_eq!(tls.reload(), Reload::Applied);
    assert_eq!(tls.reload(), Reload::Unchanged);
}

#[tokio::test]
async fn bad_tls_files_are_configuration_errors_reported_with_every_other() {
    let db = TestDb::sqlite().await;
    let dir = Dir::new("tls");
    let ca = Ca::new("ca");
    let files = write_files(&dir, &ca.server(), Some(&ca));
    let other = ca.server();
    let other_key = dir.write("other.key", &other.key);
    let not_pem = dir.write("not.pem", "hello");
    let missing = dir.0.join("missing.crt");

    let problems = |change: &dyn Fn(&mut ServeConfig)| {
        let mut config = tls_config(&db, &files);
        change(&mut config);
        config.validate().map_err(|e| e.0)
    };
    assert_eq!(problems(&|_| {}), Ok(()));
    let all = problems(&|c| {
        c.tls_key = Some(other_key.clone());
        c.request_timeout_ms = 0;
    })
    .unwrap_err();
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(all[0].contains("--request-timeout-ms"), "{all:?}");
    assert!(
        all[1].contains("--tls-key") && all[1].contains("does not match"),
        "{all:?}"
    );
    type Change<'a> = &'a dyn Fn(&mut ServeConfig);
    let cases: [(&str, Change); 5] = [
        ("--tls-cert", &|c| c.tls_cert = Some(missing.clone())),
        ("--tls-cert", &|c| c.tls_cert = Some(not_pem.clone())),
        ("--tls-key", &|c| c.tls_key = Some(not_pem.clone())),
        ("--tls-client-ca", &|c| {
            c.tls_client_ca = Some(not_pem.clone())
        }),
        ("--tls-key needs --tls-cert", &|c| c.tls_cert = None),
    ];
    // Every bad file at once, and listeners that would collide.
    let all = problems(&|c| {
        c.tls_cert = Some(not_pem.clone());
        c.tls_key = Some(not_pem.clone());
        c.tls_client_ca = Some(not_pem.clone());
        c.health_listen = Some("127.0.0.1:9999".parse().unwrap());
        c.metrics_listen = Some("0.0.0.0:9999".parse().unwrap());
    })
    .unwrap_err();
    for flag in [
        "--tls-cert",
        "--tls-key",
        "--tls-client-ca",
        "--health-listen",
    ] {
        assert!(all.iter().any(|p| p.starts_with(flag)), "{flag} in {all:?}");
    }
    assert_eq!(all.len(), 4, "{all:?}");
    let mut failures = Vec::new();
    for (flag, change) in cases {
        match problems(change) {
            Err(all) if all.len() == 1 && all[0].contains(flag) => {}
            other => failures.push(format!("{flag}: {other:?}")),
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    db.cleanup().await;
}

#[tokio::test]
async fn the_binary_reports_every_configuration_error_and_exits_non_zero_before_binding() {
    let dir = Dir::new("tls");
    let ca = Ca::new("ca");
    let files = write_files(&dir, &ca.server(), None);
    // Hold a port, so that binding it would fail with a different message.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_consentry"))
        .args(["serve", "--listen", &held.local_addr().unwrap().to_string()])
        .arg("--tls-cert")
        .arg(&files.cert)
        .args(["--tls-key", "/nonexistent/server.key"])
        .args(["--tls-client-ca", "/nonexistent/ca.pem"])
        .args(["--max-staleness", "100ms"])
        .env_remove("DATABASE_URL")
        .current_dir(&dir.0)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    for expected in [
        "invalid configuration",
        "--max-staleness",
        "--tls-key: cannot read /nonexistent/server.key",
        "--tls-client-ca: cannot read /nonexistent/ca.pem",
    ] {
        assert!(stderr.contains(expected), "{expected:?} in:\n{stderr}");
    }
    assert!(
        !stderr.contains("cannot listen"),
        "nothing was bound:\n{stderr}"
    );
    assert!(
        !Path::new(&dir.0).join("consentry.db").exists(),
        "no store was created"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_tls_with_health_on_the_plaintext_listener() {
    let db = TestDb::sqlite().await;
    let dir = Dir::new("tls");
    let ca = Ca::new("ca");
    let files = write_files(&dir, &ca.server(), None);
    let cert = files.cert.to_string_lossy().into_owned();
    let key = files.key.to_string_lossy().into_owned();
    // BinaryServer waits for SERVING on the health listener.
    let server = BinaryServer::start(
        &db.url,
        &[
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--health-listen",
            "127.0.0.1:0",
        ],
    )
    .await;
    let channel = connect(server.addr, &ca, None).await.unwrap();
    assert_eq!(call(channel).await, Code::NotFound);
    assert!(server.terminate().await.success());
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_does_not_hold_up_anyone_elses_handshake() {
    let db = TestDb::sqlite().await;
    let dir = Dir::new("tls");
    let ca = Ca::new("ca");
    let files = write_files(&dir, &ca.server(), None);
    let server = TestServer::start_with(tls_config(&db, &files)).await;
    // Connections that open and say nothing (their handshakes wait up to the timeout).
    let mut silent = Vec::new();
    for _ in 0..20 {
        silent.push(tokio::net::TcpStream::connect(server.addr).await.unwrap());
    }
    let started = std::time::Instant::now();
    let channel = tokio::time::timeout(Duration::from_secs(5), connect(server.addr, &ca, None))
        .await
        .expect("a real client is served while others stay silent")
        .unwrap();
    assert_eq!(health(channel).await, Ok(1));
    assert!(
        started.elapsed() < consentry::tls::HANDSHAKE_TIMEOUT,
        "served before the silent handshakes timed out"
    );
    drop(silent);
    server.stop().await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_on_the_health_listener_does_not_hold_up_the_exit() {
    let db = TestDb::sqlite().await;
    let mut config = config(&db);
    config.health_listen = Some(([127, 0, 0, 1], 0).into());
    let server = TestServer::start_with(config).await;
    let probe = crate::support::server::connect(server.health_addr.unwrap()).await;
    // A Watch stream ends only when the server goes away; the client keeps its connection open
    // (the channel is held to the end) and never cancels.
    let mut watch = HealthClient::new(probe.clone())
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(watch.message().await.unwrap().unwrap().status, 1);
    let limit = consentry::startup::CLOSE_TIMEOUT * 2 + Duration::from_secs(10);
    tokio::time::timeout(limit, server.stop())
        .await
        .expect("the server exits although a Watch stream is open");
    drop((watch, probe));
    db.cleanup().await;
}
