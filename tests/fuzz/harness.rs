//! The runner (a case count or a time budget), the wrong answers a target can find, and the
//! checks every target shares: a rejection is `INVALID_ARGUMENT`, names a field and says so
//! briefly.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use consentry::domain::ValidationError;
use consentry::service::status::ServiceError;
use proptest::strategy::Strategy;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestError, TestRunner};

/// The longest status message a rejection may carry. A caller's bad value is quoted at most as a
/// short prefix; a message of several kilobytes is refused by common gRPC clients.
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// Kinds of wrong answers the checks tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Finding {
    /// A string holding a NUL byte was accepted (and would reach the store).
    Nul,
    /// A rejection's message is longer than [`MAX_MESSAGE_BYTES`].
    LongMessage,
    /// A page token's position holding a NUL byte was accepted.
    PageTokenNul,
    /// A timestamp before year 1 or after year 9999 was accepted.
    TimestampRange,
}

/// What the cases of each target came to (`rejected`, `accepted`, …), for the report.
static TALLY: Mutex<BTreeMap<(String, &'static str), u64>> = Mutex::new(BTreeMap::new());

/// Counts one case of the running target as `outcome`.
pub fn tally(outcome: &'static str) {
    let target = TARGET.with(|t| t.borrow().clone());
    let mut tally = TALLY.lock().unwrap_or_else(|e| e.into_inner());
    *tally.entry((target, outcome)).or_insert(0) += 1;
}

thread_local! {
    /// The target whose cases run on this thread.
    static TARGET: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// A wrong answer: the case fails, saying what was found and an example.
pub fn finding(kind: Finding, example: impl Debug) -> Result<(), TestCaseError> {
    let example = shorten(&format!("{example:?}"));
    Err(TestCaseError::fail(format!("{kind:?}: {example}")))
}

/// At most 200 characters of `text`, for reports.
pub fn shorten(text: &str) -> String {
    match text.char_indices().nth(200) {
        Some((i, _)) => format!("{}… ({} bytes)", &text[..i], text.len()),
        None => text.to_owned(),
    }
}

/// The time budget per target, from `CONSENTRY_FUZZ_SECONDS`; `None` runs `PROPTEST_CASES` cases.
pub fn budget() -> Option<Duration> {
    let seconds: f64 = std::env::var("CONSENTRY_FUZZ_SECONDS").ok()?.parse().ok()?;
    Some(Duration::from_secs_f64(seconds.max(0.0)))
}

/// Runs `check` on values of `strategy`: `PROPTEST_CASES` cases, or rounds of them with fresh
/// seeds until `budget` has passed. A failure panics with the shrunk input and the seed that
/// replays it; every finding fails.
pub fn fuzz<S: Strategy>(
    target: &str,
    budget: Option<Duration>,
    strategy: S,
    check: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S::Value: Debug,
{
    fuzz_share(target, budget, 1, strategy, check);
}

/// [`fuzz`] with a `1/share` of the cases per round, for targets whose cases are slow.
pub fn fuzz_share<S: Strategy>(
    target: &str,
    budget: Option<Duration>,
    share: u32,
    strategy: S,
    check: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S::Value: Debug,
{
    TARGET.with(|t| *t.borrow_mut() = target.to_owned());
    let default = Config::default();
    let base = Config {
        failure_persistence: None,
        cases: (default.cases / share.max(1)).max(1),
        ..default
    };
    let started = Instant::now();
    let mut rounds = 0u64;
    let mut cases = 0u64;
    loop {
        // A seed of our own, so that a failure can say how to replay it.
        let seed = match base.rng_seed {
            RngSeed::Random => RngSeed::Fixed(fresh_seed(rounds)),
            fixed => fixed,
        };
        let config = Config {
            rng_seed: seed,
            ..base.clone()
        };
        let mut runner = TestRunner::new(config.clone());
        if let Err(e) = runner.run(&strategy, &check) {
            let replay = match seed {
                RngSeed::Fixed(n) => {
                    format!("PROPTEST_RNG_SEED={n} PROPTEST_CASES={}", config.cases)
                }
                RngSeed::Random => "a random seed".to_owned(),
            };
            match e {
                TestError::Fail(why, value) => {
                    panic!("{target}: {why}\n  input: {value:?}\n  replay: {replay}")
                }
                TestError::Abort(why) => panic!("{target}: aborted: {why} ({replay})"),
            }
        }
        rounds += 1;
        cases += u64::from(config.cases);
        match budget {
            Some(b) if started.elapsed() < b && matches!(base.rng_seed, RngSeed::Random) => {}
            _ => break,
        }
    }
    report(target, cases, started.elapsed());
}

fn fresh_seed(round: u64) -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ round.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

fn report(target: &str, cases: u64, took: Duration) {
    let outcomes: Vec<String> = TALLY
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|((t, _), _)| t == target)
        .map(|((_, outcome), n)| format!("{n} {outcome}"))
        .collect();
    eprintln!(
        "fuzz {target}: {cases} cases in {:.1} s ({})",
        took.as_secs_f64(),
        outcomes.join(", ")
    );
}

/// The field an error names: `items[i].` before a batch item's own field.
pub fn field_of(e: &ServiceError) -> Option<String> {
    match e {
        ServiceError::Invalid(v) => Some(v.field.clone()),
        ServiceError::Item { index, source } => {
            field_of(source).map(|f| format!("items[{index}].{f}"))
        }
        _ => None,
    }
}

/// The top-level field of a field path: `manifest` of `manifest.scopes[1]`.
pub fn root(field: &str) -> &str {
    let end = field.find(['.', '[']).unwrap_or(field.len());
    &field[..end]
}

/// A rejection is `INVALID_ARGUMENT`, names one of `fields` (the request's own, at the top) and
/// says so in a short message.
pub fn rejection(fields: &[String], e: ServiceError) -> Result<(), TestCaseError> {
    let field = field_of(&e);
    let status = tonic::Status::from(e);
    let (code, message) = (status.code(), status.message());
    if code != tonic::Code::InvalidArgument {
        return Err(TestCaseError::fail(format!(
            "answered {code:?} ({}), not INVALID_ARGUMENT",
            shorten(message)
        )));
    }
    let Some(field) = field.filter(|f| !f.is_empty()) else {
        return Err(TestCaseError::fail(format!(
            "a rejection names no field: {}",
            shorten(message)
        )));
    };
    if !fields.iter().any(|f| f == root(&field)) {
        return Err(TestCaseError::fail(format!(
            "the rejection names {field:?}, which the request does not have (it has {fields:?})"
        )));
    }
    if message.len() > MAX_MESSAGE_BYTES {
        finding(Finding::LongMessage, message)?;
    }
    Ok(())
}

/// A rejection by a domain parser: [`rejection`] of the same error as the service answers it.
pub fn validation(fields: &[String], e: ValidationError) -> Result<(), TestCaseError> {
    rejection(fields, ServiceError::from(e))
}

#[test]
fn a_failing_case_fails_the_target_with_its_shrunk_input_and_seed() {
    let outcome = std::panic::catch_unwind(|| {
        fuzz("self-test", None, 0u32..1000, |n| {
            assert!(n < 500, "too big");
            Ok(())
        });
    });
    let payload = outcome.expect_err("a panicking case fails the target");
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(message.contains("too big"), "{message}");
    assert!(
        message.contains("input: 500"),
        "shrunk to the smallest: {message}"
    );
    assert!(message.contains("PROPTEST_RNG_SEED="), "{message}");
}
