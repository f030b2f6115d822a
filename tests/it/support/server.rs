//! Servers for tests: the real server in-process on an ephemeral port ([`TestServer`]), or the
//! real `consentry` binary as a child process ([`BinaryServer`]), each on a database of its own,
//! with a bootstrap client whose key is [`BOOTSTRAP_KEY`].

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use consentry::config::ServeConfig;
use consentry::proto::admin_service_client::AdminServiceClient;
use consentry::proto::permission_service_client::PermissionServiceClient;
use consentry::startup::App;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::oneshot;
use tonic::transport::Channel;

use super::db::TestDb;

/// The key of the `bootstrap` client every test server starts with (every capability, `*`).
pub const BOOTSTRAP_KEY: &str = "test-bootstrap-key-0123456789abcdef";

/// A server running in this process.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Where it serves metrics, if asked for.
    pub metrics_addr: Option<SocketAddr>,
    /// Where it serves plaintext health, if asked for.
    pub health_addr: Option<SocketAddr>,
    /// Where it serves AuthZEN, if asked for.
    pub http_addr: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// A configuration for a test server on `db`: ephemeral port, bootstrap key, small pools.
pub fn config(db: &TestDb) -> ServeConfig {
    config_at(&db.url)
}

/// A configuration for a test server on the database at `url` (see [`config`]).
pub fn config_at(url: &str) -> ServeConfig {
    let mut config = ServeConfig::new(([127, 0, 0, 1], 0).into(), url);
    config.bootstrap_key = Some(
        BOOTSTRAP_KEY
            .parse()
            .unwrap_or_else(|_| panic!("bootstrap key")),
    );
    config.db_max_connections = 5;
    config.shutdown_delay_ms = 0;
    config
}

impl TestServer {
    /// Starts a server on `db` with the test configuration.
    pub async fn start(db: &TestDb) -> TestServer {
        Self::start_with(config(db)).await
    }

    /// Starts a server with `config`.
    pub async fn start_with(config: ServeConfig) -> TestServer {
        // Test logs only on request: CONSENTRY_TEST_LOG=1 (filtered by RUST_LOG).
        if std::env::var_os("CONSENTRY_TEST_LOG").is_some() {
            consentry::telemetry::init(false);
        }
        let app = App::build(config).await.expect("server builds");
        let addr = app.local_addr();
        // Over TLS, readiness is asked on the plaintext health listener (as Kubernetes does).
        let app_health = app.health_addr();
        let probe = app_health.filter(|_| app.tls()).unwrap_or(addr);
        let metrics_addr = app.metrics_addr();
        let http_addr = app.http_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        let server = TestServer {
            addr,
            metrics_addr,
            health_addr: app_health,
            http_addr,
            stop: Some(stop),
            task: Some(task),
        };
        wait_serving(probe).await;
        server
    }

    /// Starts a server on `db` with the test configuration, and an AdminService client to it.
    pub async fn start_admin(db: &TestDb) -> (TestServer, AdminServiceClient<Channel>) {
        let server = Self::start(db).await;
        let admin = server.admin().await;
        (server, admin)
    }

    /// A channel to the server.
    pub async fn channel(&self) -> Channel {
        connect(self.addr).await
    }

    /// An AdminService client.
    pub async fn admin(&self) -> AdminServiceClient<Channel> {
        AdminServiceClient::new(self.channel().await)
    }

    /// A PermissionService client.
    pub async fn permission(&self) -> PermissionServiceClient<Channel> {
        PermissionServiceClient::new(self.channel().await)
    }

    /// Stops the server and waits until it has drained.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("server task")
                .expect("server ran cleanly");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A plaintext channel to the server at `addr`.
pub async fn connect(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("connects")
}

/// Polls `grpc.health.v1.Health/Check` at `addr` until SERVING, failing after 20 s.
pub async fn wait_serving(addr: SocketAddr) {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(channel) = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
        {
            let mut health = HealthClient::new(channel);
            if let Ok(r) = health
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await
                && r.into_inner().status == 1
            {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "server at {addr} never became SERVING"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `check` until it returns true, failing after `within`; returns how long it took.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "condition not met within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Reads `GET /metrics` from `addr`: the whole response, head and body (the request asks the
/// server to close the connection after it, so the response ends there).
pub async fn scrape(addr: SocketAddr) -> String {
    use tokio::io::AsyncWriteExt;
    let mut socket = tokio::net::TcpStream::connect(addr)
        .await
        .expect("metrics connects");
    socket
        .write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut socket, &mut body)
        .await
        .unwrap();
    body
}

/// The `consentry` binary as a child process.
pub struct BinaryServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The child process.
    pub child: tokio::process::Child,
    /// Lines it printed to stdout (e.g. the demo key).
    pub stdout: Vec<String>,
    /// Where it serves plaintext health, if asked to.
    pub health: Option<SocketAddr>,
    /// Where it serves metrics, if asked to.
    pub metrics: Option<SocketAddr>,
    /// Where it serves AuthZEN, if asked to.
    pub http: Option<SocketAddr>,
    /// Every line it wrote to stderr so far.
    pub stderr: Arc<Mutex<Vec<String>>>,
    /// Keeps reading stderr (so the child never blocks on a full pipe) until the child closes it.
    pub reader: tokio::task::JoinHandle<()>,
}

impl BinaryServer {
    /// Runs `consentry serve --listen 127.0.0.1:0 --database-url <url>` plus `args`, with the
    /// bootstrap key in the environment, and waits until it is SERVING.
    pub async fn start(database_url: &str, args: &[&str]) -> BinaryServer {
        let server = Self::spawn(database_url, args, None).await;
        wait_serving(server.health.unwrap_or(server.addr)).await;
        server
    }

    /// Runs the binary as [`BinaryServer::start`] does (with `RUST_LOG=<rust_log>` if given), and
    /// returns as soon as it says where it listens, SERVING or not.
    pub async fn spawn(database_url: &str, args: &[&str], rust_log: Option<&str>) -> BinaryServer {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_consentry"));
        command
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--database-url",
                database_url,
            ])
            .args(args)
            .env("CONSENTRY_BOOTSTRAP_KEY", BOOTSTRAP_KEY)
            .env_remove("DATABASE_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(filter) = rust_log {
            command.env("RUST_LOG", filter);
        }
        let mut child = command.spawn().expect("consentry binary starts");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let deadline = Instant::now() + Duration::from_secs(30);
        let (mut health, mut metrics, mut http) = (None, None, None);
        let addr = loop {
            let line = tokio::time::timeout_at(deadline.into(), lines.next_line())
                .await
                .expect("the binary printed where it listens in time")
                .unwrap()
                .expect("the binary exited before listening");
            stderr.lock().unwrap().push(line.clone());
            // The metrics and health addresses come first, if there are any.
            if let Some(rest) = line.strip_prefix("metrics at http://") {
                metrics = rest.trim().trim_end_matches("/metrics").parse().ok();
            }
            if let Some(rest) = line.strip_prefix("AuthZEN at http://") {
                http = Some(rest.trim().parse::<SocketAddr>().unwrap());
            }
            if let Some(rest) = line.strip_prefix("health (plaintext) at ") {
                health = Some(rest.trim().parse::<SocketAddr>().unwrap());
            }
            if let Some(rest) = line.strip_prefix("consentry listening on ") {
                break rest
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .parse::<SocketAddr>()
                    .unwrap();
            }
        };
        let kept = stderr.clone();
        let reader = tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                kept.lock().unwrap().push(line);
            }
        });
        let mut stdout = Vec::new();
        if args.contains(&"--demo") {
            let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
            if let Ok(Some(line)) = out.next_line().await {
                stdout.push(line);
            }
        }
        BinaryServer {
            addr,
            child,
            stdout,
            health,
            http,
            metrics,
            stderr,
            reader,
        }
    }

    /// An AdminService client.
    pub async fn admin(&self) -> AdminServiceClient<Channel> {
        AdminServiceClient::new(connect(self.addr).await)
    }

    /// Sends SIGTERM and returns the exit status.
    pub async fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().expect("running");
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("exits after SIGTERM")
            .unwrap()
    }
}
