//! Every citation of the rulebook names a section that exists: `§N`, `§N.M` and `§3 step K`
//! in the code, the tests, the protos, the migrations, the manifests and the docs are checked
//! against the headings of `docs/rules.md` (and the steps of its §3.2). A section of another
//! document (`RFC 7517 §5`) is not the rulebook's and is skipped. No file names a rulebook that
//! the repository does not hold.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The rulebook's sections (`"3"`, `"3.2"`, …) and the number of steps in its §3.2.
struct Rulebook {
    sections: BTreeSet<String>,
    steps: usize,
}

impl Rulebook {
    fn read() -> Rulebook {
        let text = std::fs::read_to_string(Path::new(ROOT).join("docs/rules.md"))
            .expect("reads docs/rules.md");
        Rulebook::parse(&text)
    }

    /// Sections are the `## N.` and `### N.M` headings; steps are the top-level numbered items
    /// under `### 3.2`.
    fn parse(text: &str) -> Rulebook {
        let mut sections = BTreeSet::new();
        let mut steps = 0;
        let mut in_steps = false;
        for line in text.lines() {
            let heading = line
                .strip_prefix("### ")
                .or_else(|| line.strip_prefix("## "));
            if let Some(heading) = heading {
                let number = heading
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .trim_end_matches('.');
                if !number.is_empty() && number.chars().all(|c| c.is_ascii_digit() || c == '.') {
                    sections.insert(number.to_owned());
                }
                in_steps = number == "3.2";
                continue;
            }
            if in_steps {
                let item = line.split_once(". ").map(|(n, _)| n);
                if item.is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit())) {
                    steps += 1;
                }
            }
        }
        Rulebook { sections, steps }
    }

    /// What is wrong with the citation `§section` (followed by `rest`), if anything.
    fn problem(&self, section: &str, rest: &str) -> Option<String> {
        if !self.sections.contains(section) {
            return Some(format!("§{section} is no section of docs/rules.md"));
        }
        let step = rest
            .strip_prefix(" step ")
            .map(|r| {
                r.chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>()
            })
            .filter(|s| !s.is_empty())?;
        let n: usize = step.parse().ok()?;
        (section != "3" || n == 0 || n > self.steps).then(|| {
            format!(
                "§{section} step {step}: the steps are §3's, numbered 1 to {}",
                self.steps
            )
        })
    }
}

/// Every `§` citation of the rulebook in `text`, as (line, what is wrong).
fn problems(book: &Rulebook, text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        for (at, _) in line.match_indices('§') {
            let before = &line[..at];
            // Another document's section: `RFC 7517 §5`.
            let last_word = before.trim_end().rsplit(' ').next().unwrap_or("");
            let prior = before.trim_end().rsplit(' ').nth(1).unwrap_or("");
            let prior = prior.trim_start_matches(|c: char| !c.is_alphanumeric());
            if prior == "RFC" && last_word.chars().all(|c| c.is_ascii_digit()) {
                continue;
            }
            let rest = &line[at + '§'.len_utf8()..];
            let section: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            let section = section.trim_end_matches('.');
            if section.is_empty() {
                found.push((n + 1, "a § with no section number".to_owned()));
                continue;
            }
            if let Some(problem) = book.problem(section, &rest[section.len()..]) {
                found.push((n + 1, problem));
            }
        }
    }
    found
}

/// The files citations can stand in: the repository's sources and documents.
fn files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if path.is_dir() {
                if !name.starts_with('.') || name == ".ci" {
                    walk(&path, out);
                }
            } else {
                out.push(path);
            }
        }
    }
    let root = Path::new(ROOT);
    let mut out = Vec::new();
    for dir in [
        "src",
        "tests",
        "docs",
        "proto",
        "migrations",
        "benches",
        "examples",
        "deploy",
        "scripts",
        "demo",
        ".ci",
    ] {
        walk(&root.join(dir), &mut out);
    }
    for file in [
        "README.md",
        "ARCHITECTURE.md",
        "BENCHMARKS.md",
        "Cargo.toml",
        "build.rs",
    ] {
        out.push(root.join(file));
    }
    out.sort();
    out
}

#[test]
fn every_citation_names_a_section_of_the_rulebook() {
    let book = Rulebook::read();
    assert!(
        book.sections.len() >= 30 && book.steps == 8,
        "the rulebook reads as {} sections and {} steps",
        book.sections.len(),
        book.steps
    );
    let absent = concat!("DESIGN", ".md");
    let mut found = Vec::new();
    let mut cited = 0;
    // This file's own examples are made to fail.
    let own = Path::new(ROOT).join(file!());
    for path in files().into_iter().filter(|p| *p != own) {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let shown = path
            .strip_prefix(ROOT)
            .unwrap_or(&path)
            .display()
            .to_string();
        cited += text.matches('§').count();
        for (line, problem) in problems(&book, &text) {
            found.push(format!("{shown}:{line}: {problem}"));
        }
        for (n, line) in text.lines().enumerate() {
            if line.contains(absent) {
                found.push(format!(
                    "{shown}:{}: names {absent}, which the repository does not hold; cite docs/rules.md",
                    n + 1
                ));
            }
        }
    }
    assert!(
        cited >= 100,
        "only {cited} citations found: the walk lost track of the files"
    );
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn the_citation_check_refuses_what_does_not_exist() {
    let book = Rulebook::parse(
        "# Rules\n## 1. One\n### 1.1 Sub\n## 3. Decision\n### 3.2 The steps\n\n1. **A.** a\n   1. not a step\n2. **B.** b\n## 4. Other\n",
    );
    assert_eq!(book.steps, 2);
    let text = [
        "see §1 and §1.1, §3 step 2 and §4.",
        "the JWK set (RFC 7517 §5) is another document, as is RFC 7515 §4.1.11",
        "but §1.2 is missing,",
        "and §3 step 3 too, and §4 step 1 is no step",
        "a bare § names nothing",
    ]
    .join("\n");
    let found = problems(&book, &text);
    let lines: Vec<usize> = found.iter().map(|(l, _)| *l).collect();
    assert_eq!(lines, [3, 4, 4, 5], "{found:?}");
    assert!(found[0].1.contains("§1.2 is no section"), "{found:?}");
    assert!(found[1].1.contains("numbered 1 to 2"), "{found:?}");
}
