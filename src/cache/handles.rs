//! What the caches count and by what: the cache kinds, the causes of reading the change log, and
//! the metric handles, registered once.

use std::time::Duration;

use metrics::{Counter, Gauge, Histogram};

/// What made this instance read the change log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The first read, at start.
    Start,
    /// The periodic poll that bounds staleness and probes an unreachable store.
    Poll,
    /// A notification of a committed write.
    Notify,
    /// A caller's `at_least_as_fresh` token beyond the applied revision.
    Token,
    /// An entry read fresher than the applied revision.
    Read,
    /// This instance's own write, applied before it replies.
    Write,
}

impl Cause {
    pub(super) const ALL: [Cause; 6] = [
        Cause::Start,
        Cause::Poll,
        Cause::Notify,
        Cause::Token,
        Cause::Read,
        Cause::Write,
    ];

    pub(super) fn as_str(self) -> &'static str {
        match self {
            Cause::Start => "start",
            Cause::Poll => "poll",
            Cause::Notify => "notify",
            Cause::Token => "token",
            Cause::Read => "read",
            Cause::Write => "write",
        }
    }
}

/// Which cache: an index into per-cache metric handles.
#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
    Apps,
    Users,
    Grants,
    Catalogs,
    Clients,
}

pub(super) const NAMES: [&str; 5] = ["apps", "users", "grants", "catalogs", "clients"];

/// Metric handles, registered once.
pub(super) struct Handles {
    pub(super) hits: [Counter; 5],
    pub(super) misses: [Counter; 5],
    pub(super) load_seconds: [Histogram; 5],
    pub(super) entries: [Gauge; 5],
    pub(super) catch_ups: [Counter; 6],
    pub(super) applied: Gauge,
    pub(super) staleness: Gauge,
    pub(super) store_up: Gauge,
    /// `consentry_revision_regressions_total`: times the store's history was found replaced.
    pub(super) regressions: Counter,
}

impl Handles {
    /// Registers the handles, and `consentry_max_staleness_seconds` at `max_staleness`, so that
    /// alerts compare the staleness with the bound this instance was given.
    pub(super) fn new(max_staleness: Duration) -> Self {
        metrics::gauge!("consentry_max_staleness_seconds").set(max_staleness.as_secs_f64());
        Self {
            hits: NAMES.map(|n| metrics::counter!("consentry_cache_hits_total", "cache" => n)),
            misses: NAMES.map(|n| metrics::counter!("consentry_cache_misses_total", "cache" => n)),
            load_seconds: NAMES
                .map(|n| metrics::histogram!("consentry_store_duration_seconds", "op" => n)),
            entries: NAMES.map(|n| metrics::gauge!("consentry_cache_entries", "cache" => n)),
            catch_ups: Cause::ALL.map(
                |c| metrics::counter!("consentry_change_log_reads_total", "cause" => c.as_str()),
            ),
            applied: metrics::gauge!("consentry_applied_revision"),
            regressions: metrics::counter!("consentry_revision_regressions_total"),
            staleness: metrics::gauge!("consentry_staleness_seconds"),
            store_up: metrics::gauge!("consentry_store_up"),
        }
    }
}
