//! The invariants of ARCHITECTURE.md that reading the source can decide: every source file is
//! on the code map; the domain does no I/O and no async; sqlx stays in the store; `Status` is
//! built in one place; generated types stay at the edge; the cache knows no database and holds
//! only the store's reads; every store write goes through the write transaction; admin handlers
//! go through the write helper. Each failure names the file and line.

use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// A source file: its path under `src/`, and its lines outside `#[cfg(test)]` modules and
/// comments.
struct Source {
    path: String,
    code: Vec<(usize, String)>,
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("reads src/") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code lines of a file: comments dropped, and everything from a `#[cfg(test)]` line to
/// the end of the item it gates (by brace depth).
fn code_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut skipping = false;
    let mut depth = 0i64;
    let mut opened = false;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]") {
            skipping = true;
            depth = 0;
            opened = false;
            continue;
        }
        if skipping {
            depth += line.matches('{').count() as i64 - line.matches('}').count() as i64;
            opened |= line.contains('{');
            if (opened && depth <= 0) || (!opened && trimmed.ends_with(';')) {
                skipping = false;
            }
            continue;
        }
        if trimmed.starts_with("//") {
            continue;
        }
        let code = line.split(" // ").next().unwrap_or(line);
        out.push((i + 1, code.to_owned()));
    }
    out
}

fn sources() -> Vec<Source> {
    let src = Path::new(ROOT).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("reads a source file");
            let rel = p.strip_prefix(&src).expect("under src/");
            Source {
                path: rel.to_string_lossy().replace('\\', "/"),
                code: code_lines(&text),
            }
        })
        .collect()
}

/// Whether a file is test code as a whole (the domain's scenario and property tests).
fn is_test_file(path: &str) -> bool {
    path.starts_with("domain/scenarios/") || path.starts_with("domain/proptests/")
}

/// Collects `file:line: what` for every code line of the selected files that contains one of
/// `words`.
fn lines_with(
    sources: &[Source],
    select: impl Fn(&str) -> bool,
    words: &[&str],
    why: &str,
    found: &mut Vec<String>,
) {
    for s in sources
        .iter()
        .filter(|s| select(&s.path) && !is_test_file(&s.path))
    {
        for (n, line) in &s.code {
            for w in words {
                if line.contains(w) {
                    found.push(format!(
                        "src/{}:{n}: {why} ({w:?}): {}",
                        s.path,
                        line.trim()
                    ));
                }
            }
        }
    }
}

#[test]
fn every_source_file_is_on_the_code_map() {
    let map = std::fs::read_to_string(Path::new(ROOT).join("ARCHITECTURE.md"))
        .expect("reads ARCHITECTURE.md");
    let missing: Vec<_> = sources()
        .into_iter()
        .map(|s| s.path)
        .filter(|p| {
            let dir_named = ["domain/scenarios/", "domain/proptests/"]
                .iter()
                .any(|d| p.starts_with(d) && map.contains(&format!("`{d}`")));
            !dir_named && !map.contains(&format!("`{p}`"))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md does not name: {missing:?}"
    );
}

#[test]
fn the_domain_does_no_io_no_async_and_reads_no_clock() {
    let sources = sources();
    let mut found = Vec::new();
    let words = [
        "async ", ".await", "tokio", "tonic", "prost", "sqlx", "std::fs", "std::net", "std::env",
    ];
    lines_with(
        &sources,
        |p| p.starts_with("domain/"),
        &words,
        "the domain is pure",
        &mut found,
    );
    lines_with(
        &sources,
        |p| p.starts_with("domain/") && p != "domain/time.rs",
        &["SystemTime", "Timestamp::now("],
        "only time.rs reads the clock, and the domain never calls it",
        &mut found,
    );
    assert!(found.is_empty(), "{}", found.join("\n"));
}

/// The names a file takes from `crate::store`: every identifier of a path or a braced list of
/// imports that follows `crate::store::`.
fn store_names(s: &Source) -> Vec<String> {
    let text: String = s.code.iter().map(|(_, l)| format!("{l}\n")).collect();
    let mut names = Vec::new();
    for (at, _) in text.match_indices("crate::store::") {
        let rest = &text[at + "crate::store::".len()..];
        let taken = match rest.strip_prefix('{') {
            Some(list) => &list[..list.find('}').unwrap_or(list.len())],
            None => {
                let end = rest
                    .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                    .unwrap_or(rest.len());
                &rest[..end]
            }
        };
        names.extend(
            taken
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .filter(|n| !n.is_empty())
                .map(str::to_owned),
        );
    }
    names
}

#[test]
fn sqlx_is_used_only_in_the_store_and_never_by_the_cache() {
    let sources = sources();
    let mut found = Vec::new();
    lines_with(
        &sources,
        |p| !p.starts_with("store/"),
        &["sqlx"],
        "sqlx belongs to store/",
        &mut found,
    );
    lines_with(
        &sources,
        |p| p.starts_with("cache/"),
        &["database_url", "DATABASE_URL", "PgListener"],
        "the cache knows the store only through its traits",
        &mut found,
    );
    for s in sources.iter().filter(|s| s.path.starts_with("cache/")) {
        for name in store_names(s) {
            let write = name.ends_with("Writes");
            if write || ["Store", "SqlStore", "Lists", "Settings"].contains(&name.as_str()) {
                found.push(format!(
                    "src/{}: names crate::store::{name}: the cache reads the store through \
                     CacheReads and cannot write",
                    s.path
                ));
            }
        }
    }
    lines_with(
        &sources,
        |p| p.starts_with("cache/"),
        &["dyn Store", "SqlStore"],
        "the cache reads the store through CacheReads and cannot write",
        &mut found,
    );
    lines_with(
        &sources,
        |p| ["cache/mod.rs", "cache/snapshots.rs", "cache/clients.rs"].contains(&p),
        &["Decision"],
        "the caches hold facts, never decisions",
        &mut found,
    );
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn status_is_constructed_only_in_the_mapping_module_and_the_interceptor() {
    let constructors = [
        "new(",
        "with_details(",
        "with_metadata(",
        "cancelled(",
        "unknown(",
        "invalid_argument(",
        "deadline_exceeded(",
        "not_found(",
        "already_exists(",
        "permission_denied(",
        "resource_exhausted(",
        "failed_precondition(",
        "aborted(",
        "out_of_range(",
        "unimplemented(",
        "internal(",
        "unavailable(",
        "data_loss(",
        "unauthenticated(",
        "from_error(",
    ]
    .map(|c| format!("Status::{c}"));
    let words: Vec<&str> = constructors.iter().map(String::as_str).collect();
    let mut found = Vec::new();
    lines_with(
        &sources(),
        |p| p != "service/status.rs",
        &words,
        "errors become a Status only in service/status.rs",
        &mut found,
    );
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn generated_types_stay_in_convert_the_services_and_startup() {
    let edge = |p: &str| {
        p.starts_with("service/")
            || p.starts_with("convert/")
            || ["proto.rs", "startup.rs", "lib.rs"].contains(&p)
    };
    let mut found = Vec::new();
    lines_with(
        &sources(),
        |p| !edge(p),
        &["crate::proto", "prost"],
        "only convert and the service layer see prost types",
        &mut found,
    );
    assert!(found.is_empty(), "{}", found.join("\n"));
}

/// The functions of a file, as (name, first line, body text), split at `async fn` headers.
fn functions(s: &Source) -> Vec<(String, usize, String)> {
    let mut out: Vec<(String, usize, String)> = Vec::new();
    for (n, line) in &s.code {
        if let Some(rest) = line.trim_start().split("async fn ").nth(1) {
            let name = rest.split(['(', '<']).next().unwrap_or(rest).to_owned();
            out.push((name, *n, String::new()));
        } else if let Some(last) = out.last_mut() {
            last.2.push_str(line);
            last.2.push('\n');
        }
    }
    out
}

#[test]
fn every_store_write_runs_in_the_audited_write_transaction() {
    let sources = sources();
    let writes = ["INSERT INTO", "UPDATE ", "DELETE FROM"];
    let mut found = Vec::new();
    let families = [
        "store/sql/tenants.rs",
        "store/sql/apps.rs",
        "store/sql/external.rs",
        "store/sql/clients.rs",
        "store/sql/app_rights.rs",
    ];
    let mut checked = 0;
    for s in sources
        .iter()
        .filter(|s| families.contains(&s.path.as_str()))
    {
        for (name, line, body) in functions(s) {
            if !writes.iter().any(|w| body.contains(w)) {
                continue;
            }
            checked += 1;
            if !body.contains("self.begin_write()") {
                found.push(format!(
                    "src/{}:{line}: {name} writes outside begin_write",
                    s.path
                ));
            }
            if !body.contains(".commit_as(") && !body.contains(".commit(") {
                found.push(format!(
                    "src/{}:{line}: {name} does not commit through WriteTx (audit and change keys)",
                    s.path
                ));
            }
        }
    }
    assert!(
        checked >= 20,
        "only {checked} writing functions found: the check lost track of the write modules"
    );
    lines_with(
        &sources,
        |p| p == "store/sql/snapshots.rs" || p == "store/sql/lists.rs",
        &writes,
        "snapshot and list reads write nothing",
        &mut found,
    );
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn admin_handlers_go_through_the_write_and_list_helpers() {
    let sources = sources();
    let handlers = sources
        .iter()
        .find(|s| s.path == "service/admin/handlers.rs")
        .expect("service/admin/handlers.rs exists");
    let mut found = Vec::new();
    let all = functions(handlers);
    for (name, line, body) in &all {
        let through = [".write(", ".list("].iter().any(|h| body.contains(h));
        if !through {
            found.push(format!(
                "src/service/admin/handlers.rs:{line}: {name} bypasses AdminApi::write/list"
            ));
        }
        if body.contains("self.store.") && !body.contains("async |") {
            found.push(format!(
                "src/service/admin/handlers.rs:{line}: {name} calls the store outside a helper"
            ));
        }
    }
    assert!(all.len() >= 30, "only {} handlers found", all.len());
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn the_source_reader_skips_test_modules_and_comments() {
    let text = "fn a() {}\n// sqlx in a comment\n#[cfg(test)]\nmod tests {\n    fn b() { sqlx }\n}\nfn c() { x } // sqlx\n";
    let lines: Vec<String> = code_lines(text).into_iter().map(|(_, l)| l).collect();
    assert_eq!(lines, ["fn a() {}", "fn c() { x }"]);
}
