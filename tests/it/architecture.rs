//! The invariants of ARCHITECTURE.md that reading the source can decide: modules use only the
//! layers below them (and every module is placed and mapped); the domain does no I/O and no
//! async; sqlx stays in the store; `Status` is built in one place; generated types stay at the
//! edge; the cache knows no database and holds only the store's reads; every function that
//! writes to the store does so inside the audited write transaction; admin handlers go through
//! the write helper. Each failure names the file and line. The layer, `Status` and write checks,
//! and the source reader, are also tried on sources made to break them.

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

/// The crate's top-level modules from the bottom layer up: a module may use modules of lower
/// layers only, or of its own layer where [`SAME_LAYER`] says why. Every module is placed here,
/// and named in ARCHITECTURE.md.
const LAYERS: &[&[&str]] = &[
    // The pure core.
    &["domain"],
    // Leaves beside it: fixtures built from the domain (test code and the `testing` feature),
    // the generated protobuf types, files re-read while serving, metrics and logging set-up.
    &["testing", "proto", "reload", "metrics", "telemetry"],
    // The store, context tokens and TLS, each over the domain alone.
    &["store", "token", "tls"],
    // The caches in front of the store.
    &["cache"],
    // The command line: it names the store's, the tokens' and TLS's settings.
    &["config"],
    // The gRPC edge: requests parsed into commands, the services, health.
    &["convert", "service", "health"],
    // The demo world, written through the store.
    &["demo"],
    // Everything put together.
    &["startup"],
];

/// Dependencies within one layer, each with its reason.
const SAME_LAYER: &[(&str, &str, &str)] = &[
    (
        "convert",
        "service",
        "a parse fails with the service's ServiceError and reads page tokens with service::paging",
    ),
    (
        "service",
        "convert",
        "handlers parse requests into commands and convert answers back",
    ),
];

/// The top-level module a source path belongs to (`cache/reader.rs` → `cache`).
fn module_of(path: &str) -> &str {
    let first = path.split('/').next().unwrap_or(path);
    first.strip_suffix(".rs").unwrap_or(first)
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// Every use of another top-level module that goes up a layer, or sideways without a reason.
fn dependency_violations(sources: &[Source]) -> Vec<String> {
    let mut found = Vec::new();
    for s in sources.iter().filter(|s| !is_test_file(&s.path)) {
        let from = module_of(&s.path);
        if ["lib", "main"].contains(&from) {
            continue;
        }
        let Some(from_layer) = layer_of(from) else {
            found.push(format!("src/{}: module `{from}` is in no layer", s.path));
            continue;
        };
        for (n, line) in &s.code {
            for (at, _) in line.match_indices("crate::") {
                let rest = &line[at + "crate::".len()..];
                let to: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if to.is_empty() || to == from {
                    continue;
                }
                let allowed = match layer_of(&to) {
                    Some(l) if l < from_layer => true,
                    Some(l) if l == from_layer => {
                        SAME_LAYER.iter().any(|(a, b, _)| *a == from && *b == to)
                    }
                    _ => false,
                };
                if !allowed {
                    found.push(format!(
                        "src/{}:{n}: `{from}` uses `{to}`, which is not below it: {}",
                        s.path,
                        line.trim()
                    ));
                }
            }
        }
    }
    found
}

#[test]
fn modules_depend_only_on_the_layers_below() {
    let found = dependency_violations(&sources());
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn every_module_is_layered_and_on_the_map() {
    let map = std::fs::read_to_string(Path::new(ROOT).join("ARCHITECTURE.md"))
        .expect("reads ARCHITECTURE.md");
    let mut modules: Vec<String> = sources()
        .iter()
        .map(|s| module_of(&s.path).to_owned())
        .filter(|m| !["lib", "main"].contains(&m.as_str()))
        .collect();
    modules.dedup();
    let mut problems = Vec::new();
    for m in &modules {
        if layer_of(m).is_none() {
            problems.push(format!("`{m}` is in no layer of LAYERS"));
        }
        let dir = std::path::Path::new(ROOT).join("src").join(m).is_dir();
        let named = if dir {
            format!("`{m}/`")
        } else {
            format!("`{m}.rs`")
        };
        if !map.contains(&named) {
            problems.push(format!("ARCHITECTURE.md does not name {named}"));
        }
    }
    for layer in LAYERS {
        for m in *layer {
            if !modules.iter().any(|x| x == m) {
                problems.push(format!("LAYERS names `{m}`, which is not a module"));
            }
        }
    }
    assert!(modules.len() >= 15, "only {} modules found", modules.len());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A source made of `lines`, as if read from `path`.
fn synthetic(path: &str, lines: &[&str]) -> Source {
    Source {
        path: path.to_owned(),
        code: code_lines(&lines.join("\n")),
    }
}

#[test]
fn the_dependency_check_catches_a_use_that_goes_up_or_sideways() {
    let upward = synthetic(
        "cache/reader.rs",
        &["use crate::service::status::ServiceError;"],
    );
    let sideways = synthetic("token/keys.rs", &["use crate::tls::Reload;"]);
    let down = synthetic(
        "service/auth.rs",
        &["use crate::cache::At;", "use crate::domain::Caller;"],
    );
    let reasoned = synthetic(
        "convert/parse/mod.rs",
        &["use crate::service::paging::Listing;"],
    );
    assert_eq!(dependency_violations(&[upward]).len(), 1);
    assert_eq!(dependency_violations(&[sideways]).len(), 1);
    assert_eq!(
        dependency_violations(&[down, reasoned]),
        Vec::<String>::new()
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

/// Every line outside `service/status.rs` that builds a `tonic::Status`.
fn status_outside_the_mapping(sources: &[Source]) -> Vec<String> {
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
        sources,
        |p| p != "service/status.rs",
        &words,
        "errors become a Status only in service/status.rs",
        &mut found,
    );
    found
}

#[test]
fn status_is_constructed_only_in_the_mapping_module() {
    let found = status_outside_the_mapping(&sources());
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn the_status_check_catches_a_status_built_in_authentication() {
    let auth = synthetic(
        "service/auth.rs",
        &[r#"return Err(Status::unauthenticated("missing `authorization: Bearer <key>`"));"#],
    );
    let mapping = synthetic("service/status.rs", &[r#"Status::new(code, message)"#]);
    assert_eq!(status_outside_the_mapping(&[auth, mapping]).len(), 1);
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

/// The name of the function a line declares, if it is a function header.
fn fn_header(line: &str) -> Option<String> {
    let mut rest = line.trim_start();
    for prefix in ["pub(super) ", "pub(crate) ", "pub "] {
        rest = rest.strip_prefix(prefix).unwrap_or(rest);
    }
    rest = rest.strip_prefix("async ").unwrap_or(rest);
    let rest = rest.strip_prefix("fn ")?;
    Some(rest.split(['(', '<']).next().unwrap_or(rest).to_owned())
}

/// The functions of a file, as (name, first line, header and body text): each runs to the
/// next function header. With `async_only`, only `async fn` headers split.
fn functions_of(s: &Source, async_only: bool) -> Vec<(String, usize, String)> {
    let mut out: Vec<(String, usize, String)> = Vec::new();
    for (n, line) in &s.code {
        let header = fn_header(line).filter(|_| !async_only || line.contains("async fn "));
        if let Some(name) = header {
            out.push((name, *n, format!("{line}\n")));
        } else if let Some(last) = out.last_mut() {
            last.2.push_str(line);
            last.2.push('\n');
        }
    }
    out
}

/// The async functions of a file (the handlers and store operations).
fn functions(s: &Source) -> Vec<(String, usize, String)> {
    functions_of(s, true)
}

/// Store functions that write outside the audited write transaction, each with its reason.
const UNAUDITED_WRITES: &[(&str, &str)] = &[
    (
        "begin_write",
        "bumps the revision: this is what takes the write lock",
    ),
    (
        "commit",
        "appends the audit event and the change-log keys of a write",
    ),
    (
        "prune_changes",
        "drops change-log rows older than any instance reads: housekeeping",
    ),
    (
        "page_token_secret",
        "stores the deployment's page-token secret once: a setting",
    ),
];

/// Every store function that writes must open the write transaction and commit through it,
/// or be a step that takes the open transaction's connection and is called only from such
/// functions (or from other steps), or be one of [`UNAUDITED_WRITES`].
fn write_violations(sources: &[Source]) -> (usize, Vec<String>) {
    let writes = ["INSERT INTO", "UPDATE ", "DELETE FROM"];
    let store: Vec<(String, String, usize, String)> = sources
        .iter()
        .filter(|s| s.path.starts_with("store/"))
        .flat_map(|s| {
            functions_of(s, false)
                .into_iter()
                .map(|(name, line, body)| (s.path.clone(), name, line, body))
        })
        .collect();
    // `begin_write` itself, or a `begin_write_*` that calls it and checks what the write is
    // about first.
    let opens = |body: &str| {
        let compact: String = body.split_whitespace().collect();
        compact.contains("self.begin_write")
            && (compact.contains(".commit_as(") || compact.contains(".commit("))
    };
    let is_step = |body: &str| body.contains("&mut AnyConnection") || body.contains("&mut WriteTx");
    let mut found = Vec::new();
    let mut checked = 0;
    for (path, name, line, body) in &store {
        if name.starts_with("begin_write_") && !body.contains("self.begin_write()") {
            found.push(format!(
                "src/{path}:{line}: {name} is named as opening a write but does not call begin_write"
            ));
        }
        if !writes.iter().any(|w| body.contains(w)) {
            continue;
        }
        checked += 1;
        if UNAUDITED_WRITES.iter().any(|(n, _)| n == name) || opens(body) {
            continue;
        }
        if !is_step(body) {
            found.push(format!(
                "src/{path}:{line}: {name} writes outside begin_write, or does not commit \
                 through WriteTx (audit and change keys)"
            ));
            continue;
        }
        let call = format!("{name}(");
        let callers: Vec<_> = store
            .iter()
            .filter(|(_, caller, _, b)| caller != name && b.contains(&call))
            .collect();
        if callers.is_empty() {
            found.push(format!(
                "src/{path}:{line}: {name} writes and no write calls it"
            ));
        }
        for (cpath, caller, cline, cbody) in callers {
            if !opens(cbody) && !is_step(cbody) {
                found.push(format!(
                    "src/{cpath}:{cline}: {caller} calls the writing step {name} outside a \
                     write transaction"
                ));
            }
        }
    }
    (checked, found)
}

#[test]
fn every_store_write_runs_in_the_audited_write_transaction() {
    let sources = sources();
    let (checked, mut found) = write_violations(&sources);
    assert!(
        checked >= 20,
        "only {checked} writing functions found: the check lost track of the write modules"
    );
    lines_with(
        &sources,
        |p| p == "store/sql/snapshots.rs" || p == "store/sql/lists.rs",
        &["INSERT INTO", "UPDATE ", "DELETE FROM"],
        "snapshot and list reads write nothing",
        &mut found,
    );
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn the_write_check_judges_each_function_on_its_own() {
    // A function that writes, after one that opens a write in the same file: judged alone.
    let file = synthetic(
        "store/sql/tenants.rs",
        &[
            "async fn put(&self) {",
            "    let mut w = self.begin_write().await?;",
            "    sqlx::query(\"INSERT INTO tenants VALUES ($1)\");",
            "    w.commit_as(ctx, audit).await",
            "}",
            "async fn sneak(&self) {",
            "    sqlx::query(\"DELETE FROM tenants\").execute(&self.pool);",
            "}",
            "async fn step(conn: &mut AnyConnection) {",
            "    sqlx::query(\"UPDATE tenants SET x = 1\");",
            "}",
            "async fn loose(&self) {",
            "    step(&mut *self.conn().await?).await",
            "}",
            "async fn begin_write_on_nothing(&self) -> StoreResult<WriteTx> {",
            "    self.pool.begin().await",
            "}",
        ],
    );
    let (checked, found) = write_violations(&[file]);
    assert_eq!(checked, 3);
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(found[0].contains("sneak"), "{found:?}");
    assert!(
        found[1].contains("loose calls the writing step step"),
        "{found:?}"
    );
    assert!(
        found[2].contains("begin_write_on_nothing is named"),
        "{found:?}"
    );
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
