//! docs/operations.md as the operations tests read it: a section's code blocks in order, the
//! guide's names replaced by a run's own (roles and databases are cluster-wide, so every run
//! has its own and drops them afterwards), its SQL run statement by statement, its shell
//! commands run as written, and the binary run as an operator runs it.

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::{AssertSqlSafe, Connection, PgConnection};

use crate::support::db::{postgres_server_url, with_database};

/// The guide, as the binary under test was built with it.
pub const OPERATIONS: &str = include_str!("../../../docs/operations.md");

/// One fenced code block: its language and its text.
#[derive(Debug, Clone)]
pub struct Block {
    /// What follows the opening fence (`sql`, `sh`, `yaml`, or nothing).
    pub lang: String,
    /// The lines between the fences.
    pub text: String,
}

/// The level of a Markdown heading line (`## x` is 2), outside code blocks.
fn heading_level(line: &str) -> Option<usize> {
    let hashes = line.chars().take_while(|c| *c == '#').count();
    (hashes > 0 && line[hashes..].starts_with(' ')).then_some(hashes)
}

/// The section of the guide whose heading starts with `heading` (`### Least privilege`), up to
/// the next heading of its level or above; headings inside code blocks do not count.
pub fn section(heading: &str) -> String {
    let level = heading_level(heading).expect("a heading");
    let mut lines = OPERATIONS.lines();
    lines
        .by_ref()
        .find(|l| l.starts_with(heading))
        .unwrap_or_else(|| panic!("docs/operations.md has {heading:?}"));
    let mut text = String::new();
    let mut in_code = false;
    for line in lines {
        if line.starts_with("```") {
            in_code = !in_code;
        } else if !in_code && heading_level(line).is_some_and(|l| l <= level) {
            break;
        }
        text.push_str(line);
        text.push('\n');
    }
    text
}

/// The fenced code blocks of `text`, in order.
pub fn blocks(text: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut current: Option<Block> = None;
    for line in text.lines() {
        match (&mut current, line.strip_prefix("```")) {
            (None, Some(lang)) => {
                current = Some(Block {
                    lang: lang.trim().to_owned(),
                    text: String::new(),
                })
            }
            (Some(_), Some(_)) => blocks.extend(current.take()),
            (Some(block), None) => {
                block.text.push_str(line);
                block.text.push('\n');
            }
            (None, None) => {}
        }
    }
    blocks
}

/// The code blocks in `lang` of the section under `heading`.
pub fn blocks_in(heading: &str, lang: &str) -> Vec<String> {
    blocks(&section(heading))
        .into_iter()
        .filter(|b| b.lang == lang)
        .map(|b| b.text)
        .collect()
}

/// The guide's three setup blocks: the roles, the database, the grants inside it.
pub fn setup_blocks() -> [String; 3] {
    let blocks = blocks_in("### Least privilege", "sql");
    <[String; 3]>::try_from(blocks).unwrap_or_else(|b| {
        panic!(
            "the guide's least privilege section has three sql blocks, not {}",
            b.len()
        )
    })
}

/// Cluster-wide names of one run, dropped afterwards (roles outlive databases, so this does not
/// rely on the test-database sweep).
pub struct Names {
    /// The database the guide calls `consentry`.
    pub database: String,
    /// The role the guide calls `consentry_migrator`.
    pub migrator: String,
    /// The role the guide calls `consentry_runtime`.
    pub runtime: String,
}

impl Names {
    /// Names no other run uses.
    pub fn new() -> Names {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = format!(
            "{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        Names {
            // Not the test databases' prefix: their sweep must not take this one.
            database: format!("consentry_ops_{n}"),
            migrator: format!("consentry_ops_migrator_{n}"),
            runtime: format!("consentry_ops_runtime_{n}"),
        }
    }

    /// The URL of this run's database, connecting as `role`.
    pub fn url(&self, role: &str) -> String {
        let url = self.superuser_url();
        let start = url.find("://").unwrap() + 3;
        let at = url[start..]
            .find('@')
            .map(|i| start + i + 1)
            .unwrap_or(start);
        format!("{}{role}@{}", &url[..start], &url[at..])
    }

    /// This run's database as the migration role.
    pub fn migrator_url(&self) -> String {
        self.url(&self.migrator)
    }

    /// This run's database as the runtime role.
    pub fn runtime_url(&self) -> String {
        self.url(&self.runtime)
    }

    /// This run's database as the test server's superuser.
    pub fn superuser_url(&self) -> String {
        with_database(&postgres_server_url(), &self.database)
    }

    /// The statements of an SQL block of the guide, with its names replaced by this run's.
    pub fn statements(&self, block: &str) -> Vec<String> {
        let renamed = block
            .replace("consentry_migrator", "\u{1}")
            .replace("consentry_runtime", "\u{2}")
            .replace("consentry", &self.database)
            .replace('\u{1}', &self.migrator)
            .replace('\u{2}', &self.runtime);
        renamed
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// Runs the guide's setup as written: the roles and the database as a superuser connected
    /// to the server's own database, then the grants connected to the new one.
    pub async fn set_up(&self) {
        let [roles, database, grants] = setup_blocks();
        run(&postgres_server_url(), &self.statements(&roles)).await;
        self.create_database(&database, &grants).await;
    }

    /// Runs the guide's database and grants blocks as written (what a restore does again).
    pub async fn create_database(&self, database: &str, grants: &str) {
        run(&postgres_server_url(), &self.statements(database)).await;
        run(&self.superuser_url(), &self.statements(grants)).await;
    }
}

impl Drop for Names {
    fn drop(&mut self) {
        // One statement per `-c`: DROP DATABASE cannot share a transaction.
        let database = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.database);
        let migrator = format!("DROP ROLE IF EXISTS \"{}\"", self.migrator);
        let runtime = format!("DROP ROLE IF EXISTS \"{}\"", self.runtime);
        let out = std::process::Command::new("psql")
            .args(["-q", "-v", "ON_ERROR_STOP=1", "-d", &postgres_server_url()])
            .args(["-c", &database, "-c", &migrator, "-c", &runtime])
            .output();
        match out {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!("cleanup: {}", String::from_utf8_lossy(&out.stderr)),
            Err(e) => eprintln!("cleanup: cannot run psql: {e}"),
        }
    }
}

/// Runs `statements` one by one on `url`, failing with the one that fails.
pub async fn run(url: &str, statements: &[String]) {
    let mut conn = PgConnection::connect(url).await.unwrap();
    for statement in statements {
        sqlx::raw_sql(AssertSqlSafe(statement.clone()))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
    conn.close().await.unwrap();
}

/// What `statement` does on `url`: `Ok` or the database's SQLSTATE and message.
pub async fn attempt(url: &str, statement: &str) -> Result<(), (String, String)> {
    let mut conn = PgConnection::connect(url).await.unwrap();
    let result = sqlx::raw_sql(AssertSqlSafe(statement.to_owned()))
        .execute(&mut conn)
        .await;
    let _ = conn.close().await;
    match result {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(db)) => Err((
            db.code().unwrap_or_default().into_owned(),
            db.message().to_owned(),
        )),
        Err(e) => panic!("{statement}: {e}"),
    }
}

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

/// A shell block of the guide, run as written by `sh -e` in `dir` with `env`; fails with its
/// output unless it succeeds.
pub fn sh(block: &str, dir: &Path, env: &[(&str, &str)]) {
    let out = std::process::Command::new("sh")
        .arg("-ec")
        .arg(block)
        .envs(env.iter().copied())
        .current_dir(dir)
        .output()
        .expect("sh runs");
    assert!(
        out.status.success(),
        "the guide's commands failed:\n{block}\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Text of a process's output, for messages.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn sections_end_at_their_level_and_ignore_headings_inside_code() {
    let least = section("### Least privilege");
    assert!(least.contains("CREATE ROLE"));
    assert!(!least.contains("### Connections"));
    let admin = section("## Admin commands");
    assert!(admin.contains("kind: Job"), "{admin}");
    let rollback = section("### Rolling back");
    assert!(rollback.contains("older binary"));
    assert!(!rollback.contains("CREATE ROLE"));
    let restore = section("### Restoring PostgreSQL");
    let kinds: Vec<String> = blocks(&restore).into_iter().map(|b| b.lang).collect();
    assert!(kinds.contains(&"sql".to_owned()), "{kinds:?}");
    let names = Names {
        database: "d".into(),
        migrator: "m".into(),
        runtime: "r".into(),
    };
    assert_eq!(
        names.statements("GRANT CONNECT ON DATABASE consentry TO consentry_runtime;\n"),
        ["GRANT CONNECT ON DATABASE d TO r"]
    );
    // Nothing to drop: these names were never created.
    std::mem::forget(names);
}
