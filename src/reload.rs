//! Files re-read while serving (the TLS certificate and key, the token signing keys): the
//! outcome of one look at them, the timer that looks again, and the words for a PEM file that
//! does not parse.
//!
//! Invariant: a reload runs off the runtime's workers (file reads block) and never panics; what
//! it reports quotes only PEM marker lines, never key material.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// What one look at the files found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reload {
    /// Nothing changed.
    Unchanged,
    /// The files changed and the new configuration is now served to new connections.
    Applied,
    /// The files changed into something unusable; the last good configuration stays.
    Refused,
}

impl Reload {
    /// The `result` label of a look that found a change (`applied` or `refused`); `None` when
    /// nothing changed, which is not counted.
    pub fn result(self) -> Option<&'static str> {
        match self {
            Reload::Unchanged => None,
            Reload::Applied => Some("applied"),
            Reload::Refused => Some("refused"),
        }
    }
}

/// Runs `reload` every `interval` (not at once) until `stop`, off the runtime's workers: the
/// timer behind re-reading files that change while serving (the TLS files, the signing keys).
pub fn reread_every(
    interval: Duration,
    mut stop: watch::Receiver<bool>,
    reload: impl Fn() -> Reload + Send + Sync + 'static,
) -> tokio::task::JoinHandle<()> {
    let reload = Arc::new(reload);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let reload = reload.clone();
                    // File reads are blocking.
                    let _ = tokio::task::spawn_blocking(move || reload()).await;
                }
                _ = stop.changed() => return,
            }
        }
    })
}

/// What is wrong with a PEM text, in words. (The parser's own message shows the offending line
/// as a list of byte values.) Only marker lines are quoted, never key material.
pub fn pem_problem(e: &rustls_pki_types::pem::Error) -> String {
    use rustls_pki_types::pem::Error;
    let text = |bytes: &[u8]| {
        crate::domain::error::quoted(String::from_utf8_lossy(bytes).trim_end()).to_string()
    };
    match e {
        Error::MissingSectionEnd { end_marker } => format!(
            "a section has no end line: {} is missing",
            text(&[b"-----END ", end_marker.as_slice(), b"-----"].concat())
        ),
        Error::IllegalSectionStart { line } => {
            format!("a section starts with a malformed line {}", text(line))
        }
        Error::Base64Decode(why) => format!("a section is not valid base64 ({why})"),
        Error::NoItemsFound => "it holds no PEM section".to_owned(),
        other => other.to_string(),
    }
}
