//! Target `demo`: the `--demo` world loader (`demo::load_json`) on arbitrary text, on
//! `demo/world.json` mutated byte by byte, and on the world with values replaced by hostile ones,
//! keys removed and elements duplicated, each loaded into a real SQLite store (a fresh one
//! whenever the previous case wrote). A malformed world is an error, never a panic.

use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use consentry::demo::{WORLD, load_json};
use consentry::store::{Snapshots, SqlStore};
use proptest::prelude::*;
use serde_json::Value;

use crate::describe::{self, Choices, Mutation};
use crate::harness::{self, fuzz_share};

/// How the world of one case is made.
#[derive(Debug, Clone)]
enum WorldInput {
    /// Any text.
    Text(String),
    /// `demo/world.json`, mutated byte by byte.
    Bytes(Vec<Mutation>),
    /// `demo/world.json` with edits chosen from these choices.
    Edited(Vec<u32>),
}

/// One edit at a node chosen by walking down from the root.
fn edit(node: &mut Value, ch: &mut Choices) {
    let descend = ch.below(4) != 0;
    match node {
        Value::Object(map) if descend && !map.is_empty() => {
            let keys: Vec<String> = map.keys().cloned().collect();
            let key = &keys[ch.below(keys.len())];
            if ch.below(8) == 0 {
                map.remove(key);
            } else if let Some(child) = map.get_mut(key) {
                edit(child, ch);
            }
        }
        Value::Array(items) if descend && !items.is_empty() => {
            let at = ch.below(items.len());
            match ch.below(8) {
                0 => {
                    items.remove(at);
                }
                1 => items.push(items[at].clone()),
                _ => edit(&mut items[at], ch),
            }
        }
        _ => {
            *node = match ch.below(10) {
                0 => Value::Null,
                1 => Value::Bool(true),
                2 => Value::from(ch.pick(&[-1i64, 0, 1, i64::MAX])),
                3 => Value::Array(Vec::new()),
                4 => Value::Object(serde_json::Map::new()),
                _ => Value::String(describe::string(ch)),
            };
        }
    }
}

fn text(input: &WorldInput) -> String {
    match input {
        WorldInput::Text(s) => s.clone(),
        WorldInput::Bytes(m) => {
            let bytes = describe::mutate(WORLD.as_bytes().to_vec(), m);
            String::from_utf8_lossy(&bytes).into_owned()
        }
        WorldInput::Edited(choices) => {
            let mut world: Value = serde_json::from_str(WORLD).expect("the world is JSON");
            let mut ch = Choices::new(choices);
            for _ in 0..1 + ch.below(3) {
                edit(&mut world, &mut ch);
            }
            world.to_string()
        }
    }
}

fn inputs() -> impl Strategy<Value = WorldInput> {
    prop_oneof![
        1 => any::<String>().prop_map(WorldInput::Text),
        1 => prop::collection::vec(any::<(u16, u8, u8)>(), 1..6).prop_map(WorldInput::Bytes),
        2 => prop::collection::vec(any::<u32>(), 0..40).prop_map(WorldInput::Edited),
    ]
}

/// An empty, migrated SQLite store in a directory of its own (in memory where the machine has
/// `/dev/shm`), removed when dropped.
struct Fresh {
    store: SqlStore,
    dir: PathBuf,
}

impl Drop for Fresh {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn fresh() -> Fresh {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let shm = PathBuf::from("/dev/shm");
    let base = if shm.is_dir() {
        shm
    } else {
        std::env::temp_dir()
    };
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = base.join(format!("consentry-fuzz-demo-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("creates the store's directory");
    let url = format!("sqlite://{}", dir.join("consentry.db").display());
    let store = consentry::store::connect(&url, 1)
        .await
        .expect("a fresh SQLite store");
    Fresh { store, dir }
}

#[test]
fn the_demo_loader_refuses_malformed_worlds_without_panic() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let slot: RefCell<Option<Fresh>> = RefCell::new(None);
    // A case that gets past parsing writes a world, so a round here is a quarter of the cases.
    fuzz_share("demo", harness::budget(), 4, inputs(), |input| {
        let json = text(&input);
        runtime.block_on(async {
            let reused = slot.borrow_mut().take();
            let fresh = match reused {
                Some(f) => f,
                None => fresh().await,
            };
            let before = fresh.store.revision().await.expect("reads the revision");
            let outcome = load_json(&fresh.store, &json).await;
            let after = fresh.store.revision().await.expect("reads the revision");
            match &outcome {
                Ok(_) => harness::tally("loaded"),
                Err(_) if after == before => harness::tally("refused before writing"),
                Err(_) => harness::tally("refused after writing"),
            }
            if let Err(e) = &outcome {
                prop_assert!(!format!("{e:#}").is_empty(), "an error without a message");
            }
            if after == before {
                *slot.borrow_mut() = Some(fresh);
            }
            Ok(())
        })
    });
}

#[test]
fn the_world_as_shipped_loads() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let fresh = fresh().await;
        let key = load_json(&fresh.store, WORLD)
            .await
            .expect("the world loads");
        assert_eq!(key, consentry::demo::key().expect("the world's key"));
        assert!(fresh.store.revision().await.expect("the revision").0 > 1);
    });
}
