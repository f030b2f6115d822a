//! A PostgreSQL cluster of one test's own, for what the shared test server must not suffer: its
//! authentication changed, its connection slots exhausted, its configuration set, the server
//! stopped or killed.
//!
//! [`Cluster::start`] runs `initdb` into a new directory `consentry-pg-<pid>-<n>` under the temp
//! dir (password authentication over TCP, `trust` on its unix socket, which lives in the data
//! directory; a superuser `postgres` with a password of its own), writes the settings it is
//! given into `postgresql.conf`, and starts the server with `pg_ctl` on a free port of
//! 127.0.0.1. Dropping the cluster stops it (`pg_ctl stop -m immediate`) and removes the
//! directory, also when the test panics; the first cluster of a process stops and removes those
//! left by processes that are no longer running. `initdb` and `postgres` refuse to run as root:
//! as root they run as the `postgres` OS user, which then owns the directory (so the temp dir
//! must be one that user can reach, as `/tmp` is).
//!
//! [`Cluster::standby_of`] makes a hot standby of a cluster started with [`REPLICATION`]
//! (`pg_basebackup -R` into a directory of the same kind, handled the same way);
//! [`Cluster::stop`] and [`Cluster::start_again`] stop a server for real and bring it back.
//!
//! Every step is bounded: a program that does not finish in time fails the test with what it
//! printed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Once;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use sqlx::{Connection, PgConnection};

/// The prefix of cluster directories under the temp dir: `consentry-pg-<pid>-<n>`.
const PREFIX: &str = "consentry-pg-";
/// The superuser every cluster has.
pub const SUPERUSER: &str = "postgres";
/// How long `initdb`, or a start or stop of the server, may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// Settings every cluster starts with (before the test's own, which may override them): fast
/// and small, since nothing here needs to survive a crash.
const DEFAULTS: [(&str, &str); 7] = [
    ("fsync", "off"),
    ("synchronous_commit", "off"),
    ("full_page_writes", "off"),
    ("shared_buffers", "16MB"),
    ("max_connections", "20"),
    ("superuser_reserved_connections", "2"),
    ("log_min_messages", "warning"),
];

/// Settings a primary needs for [`Cluster::standby_of`]: WAL for a hot standby, senders and slots
/// to stream it, and commits that are written before they return, so that the primary's current
/// LSN after a commit covers it (cheap here, with `fsync` off). `initdb`'s `pg_hba.conf` already
/// lets the superuser replicate over 127.0.0.1 with its password.
pub const REPLICATION: [(&str, &str); 5] = [
    ("wal_level", "replica"),
    ("max_wal_senders", "4"),
    ("max_replication_slots", "4"),
    ("hot_standby", "on"),
    ("synchronous_commit", "on"),
];

/// Numbers the clusters this process makes.
static COUNTER: AtomicU32 = AtomicU32::new(0);
/// The sweep of clusters left by processes no longer running, done once per process.
static SWEPT: Once = Once::new();

/// A running PostgreSQL cluster of the test's own, stopped and removed when dropped.
pub struct Cluster {
    /// The directory holding the data directory, the server's log and the password file.
    base: PathBuf,
    bin: PathBuf,
    port: u16,
    password: String,
    running: bool,
}

/// The directory of PostgreSQL's server programs: `pg_config --bindir` if it holds `initdb`,
/// else Debian's PostgreSQL 15.
fn bin_dir() -> PathBuf {
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    from_pg_config
        .filter(|dir| dir.join("initdb").exists())
        .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"))
}

/// Whether this process runs as root (its effective uid, from `/proc/self/status`).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let uids = status.lines().find(|l| l.starts_with("Uid:"))?.to_owned();
            uids.split_whitespace().nth(2).map(|euid| euid == "0")
        })
        .unwrap_or(false)
}

/// A new random secret of 24 hex digits (for passwords that no log line may show).
pub fn random_hex() -> String {
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).expect("random bytes");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A port of 127.0.0.1 that nothing listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// `program` of `bin`, run as the `postgres` OS user when this process is root.
fn as_owner(bin: &Path, program: &str) -> Command {
    let path = bin.join(program);
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(path);
        command
    } else {
        Command::new(path)
    }
}

/// Runs `command` to completion within `timeout`, killing it if it takes longer.
async fn run(command: Command, timeout: Duration) -> Output {
    let what = format!("{command:?}");
    let mut command = tokio::process::Command::from(command);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {timeout:?}"))
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// Gives `path` to the `postgres` OS user when this process is root.
fn chown_to_owner(path: &Path) {
    if is_root() {
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(path)
            .status()
            .expect("chown runs");
        assert!(status.success(), "chown postgres {}", path.display());
    }
}

/// The pid in a directory name `consentry-pg-<pid>-<n>`.
fn pid_of(name: &str) -> Option<u32> {
    let (pid, n) = name.strip_prefix(PREFIX)?.split_once('-')?;
    n.parse::<u32>().ok()?;
    pid.parse().ok()
}

/// Stops the clusters of processes that are no longer running, and removes their directories.
fn sweep(bin: &Path) {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(pid_of) else {
            continue;
        };
        if pid != std::process::id() && Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        stop_data_dir(bin, &entry.path().join("data"), "immediate");
        let _ = std::fs::remove_dir_all(entry.path());
    }
}

/// `pg_ctl stop` of the server on `data`, if one runs there (bounded by `pg_ctl -t`).
fn stop_data_dir(bin: &Path, data: &Path, mode: &str) {
    if !data.join("postmaster.pid").exists() {
        return;
    }
    let _ = as_owner(bin, "pg_ctl")
        .args(["stop", "-w", "-t", "10", "-m", mode, "-D"])
        .arg(data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

impl Cluster {
    /// Makes and starts a cluster with `settings` (`name`, `value`) written to its
    /// `postgresql.conf`, after defaults for a fast, small, throwaway server.
    pub async fn start(settings: &[(&str, &str)]) -> Cluster {
        let mut cluster = Cluster::new(random_hex());
        cluster.init(settings).await;
        cluster.start_on_free_port().await;
        cluster
    }

    /// Makes and starts a hot standby of `primary` (which must allow replication, as
    /// [`REPLICATION`] does): `pg_basebackup -R` copies it and writes the standby's connection
    /// to it, through the replication slot `slot`, which the backup creates on the primary so
    /// that the primary keeps the WAL the standby has not received (also while it is stopped).
    pub async fn standby_of(primary: &Cluster, slot: &str) -> Cluster {
        let mut standby = Cluster::new(primary.password.clone());
        chown_to_owner(&standby.base);
        let conninfo = format!(
            "host=127.0.0.1 port={} user={SUPERUSER} password={}",
            primary.port, primary.password
        );
        let mut basebackup = as_owner(&standby.bin, "pg_basebackup");
        basebackup
            .arg("-D")
            .arg(standby.data_dir())
            .args(["-d", &conninfo, "-R", "-C", "-S", slot])
            .args(["--checkpoint=fast", "--no-sync"]);
        let out = run(basebackup, STEP_TIMEOUT).await;
        assert!(
            out.status.success(),
            "pg_basebackup failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // The copied configuration names the primary's socket directory: the standby gets its own.
        standby.append_conf(&[(
            "unix_socket_directories",
            &standby.data_dir().display().to_string(),
        )]);
        standby.start_on_free_port().await;
        standby
    }

    /// A cluster not made yet: its new, empty directory `consentry-pg-<pid>-<n>` under the temp
    /// dir (the first of a process sweeps those of processes no longer running).
    fn new(password: String) -> Cluster {
        let bin = bin_dir();
        SWEPT.call_once(|| sweep(&bin));
        let base = std::env::temp_dir().join(format!(
            "{PREFIX}{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).expect("creates the cluster directory");
        Cluster {
            base,
            bin,
            port: 0,
            password,
            running: false,
        }
    }

    /// Starts the server on a free port of 127.0.0.1.
    async fn start_on_free_port(&mut self) {
        // A port found free may be taken before the server binds it: then another.
        for attempt in 1..=5 {
            self.port = free_port();
            if self.start_server().await {
                return;
            }
            assert!(
                attempt < 5,
                "the cluster in {} never started: {}",
                self.base.display(),
                self.log()
            );
        }
    }

    /// `initdb`, then the settings.
    async fn init(&self, settings: &[(&str, &str)]) {
        let pwfile = self.base.join("superuser-password");
        std::fs::write(&pwfile, &self.password).unwrap();
        chown_to_owner(&self.base);
        let mut initdb = as_owner(&self.bin, "initdb");
        initdb
            .arg("-D")
            .arg(self.data_dir())
            .args(["-U", SUPERUSER, "--pwfile"])
            .arg(&pwfile)
            .args([
                "--auth-host=scram-sha-256",
                "--auth-local=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ]);
        let out = run(initdb, STEP_TIMEOUT).await;
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let _ = std::fs::remove_file(&pwfile);
        let socket_dir = self.data_dir().display().to_string();
        let fixed = [
            ("listen_addresses", "127.0.0.1"),
            ("unix_socket_directories", socket_dir.as_str()),
        ];
        let all: Vec<(&str, &str)> = fixed
            .iter()
            .chain(DEFAULTS.iter())
            .chain(settings)
            .copied()
            .collect();
        self.append_conf(&all);
    }

    /// Appends `settings` to `postgresql.conf` (a later line overrides an earlier one).
    fn append_conf(&self, settings: &[(&str, &str)]) {
        let mut conf = String::from("\n# consentry test cluster\n");
        for (name, value) in settings {
            conf.push_str(&format!("{name} = '{}'\n", value.replace('\'', "''")));
        }
        let path = self.data_dir().join("postgresql.conf");
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str(&conf);
        std::fs::write(&path, text).unwrap();
    }

    /// Starts the server on `self.port`; false if it did not start (its log says why).
    async fn start_server(&mut self) -> bool {
        let mut pg_ctl = as_owner(&self.bin, "pg_ctl");
        pg_ctl
            .args(["start", "-w", "-t", "30", "-D"])
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.base.join("server.log"))
            .args(["-o", &format!("-p {}", self.port)]);
        let out = run(pg_ctl, STEP_TIMEOUT).await;
        self.running = out.status.success();
        if !self.running {
            // A server that did start after all (pg_ctl timed out) is not left behind.
            stop_data_dir(&self.bin, &self.data_dir(), "immediate");
        }
        self.running
    }

    /// The data directory (which also holds the unix socket).
    pub fn data_dir(&self) -> PathBuf {
        self.base.join("data")
    }

    /// The path of one of PostgreSQL's programs (e.g. `pg_basebackup`).
    pub fn program(&self, name: &str) -> PathBuf {
        self.bin.join(name)
    }

    /// The URL of `database` for `role` with `password`, over TCP.
    pub fn url(&self, role: &str, password: &str, database: &str) -> String {
        format!(
            "postgres://{role}:{password}@127.0.0.1:{}/{database}",
            self.port
        )
    }

    /// The superuser's URL of `database`.
    pub fn superuser_url(&self, database: &str) -> String {
        self.url(SUPERUSER, &self.password, database)
    }

    /// A connection as the superuser to the database `postgres`.
    pub async fn admin(&self) -> PgConnection {
        let url = self.superuser_url("postgres");
        tokio::time::timeout(Duration::from_secs(10), PgConnection::connect(&url))
            .await
            .expect("the admin connection within 10 s")
            .unwrap_or_else(|e| panic!("the admin connection: {e}; log: {}", self.log()))
    }

    /// Stops the server cleanly (`pg_ctl stop -m fast`), waiting until it is down.
    pub async fn stop(&mut self) {
        assert!(
            self.running,
            "the cluster in {} is not running",
            self.base.display()
        );
        let mut pg_ctl = as_owner(&self.bin, "pg_ctl");
        pg_ctl
            .args(["stop", "-w", "-t", "30", "-m", "fast", "-D"])
            .arg(self.data_dir());
        let out = run(pg_ctl, STEP_TIMEOUT).await;
        assert!(
            out.status.success(),
            "pg_ctl stop failed: {}{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        self.running = false;
    }

    /// Starts a stopped server again, on the port it had.
    pub async fn start_again(&mut self) {
        assert!(
            !self.running,
            "the cluster in {} is running",
            self.base.display()
        );
        assert!(
            self.start_server().await,
            "the cluster in {} did not start again on port {}: {}",
            self.base.display(),
            self.port,
            self.log()
        );
    }

    /// Stops the server at once, as a crash would (`pg_ctl stop -m immediate`).
    pub fn kill(&mut self) {
        self.stop_as("immediate");
    }

    fn stop_as(&mut self, mode: &str) {
        if self.running {
            stop_data_dir(&self.bin, &self.data_dir(), mode);
            self.running = false;
        }
    }

    /// The server's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.base.join("server.log")).unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_directories_name_their_process() {
        assert_eq!(pid_of("consentry-pg-12-3"), Some(12));
        assert_eq!(pid_of("consentry-pg-12"), None);
        assert_eq!(pid_of("consentry-test-12-3"), None);
    }
}
