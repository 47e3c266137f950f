//! Prometheus metrics at `GET /metrics`: what arrived, what was refused
//! and why, how deep the queue is, how long measuring takes, and what was
//! decided.

use std::sync::atomic::AtomicI64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, &'static str)>;

pub struct Metrics {
    registry: Registry,
    received: Family<Labels, Counter>,
    queued: Family<Labels, Counter>,
    duplicates: Family<Labels, Counter>,
    ignored: Family<Labels, Counter>,
    rejected: Family<Labels, Counter>,
    depth: Gauge<i64, AtomicI64>,
    duration: Histogram,
    verdicts: Family<Labels, Counter>,
    retries: Counter,
    publish: Family<Labels, Counter>,
    inbound_refused: Family<Labels, Counter>,
    pruned: Family<Labels, Counter>,
    admission: Family<Labels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("sizeguard");
        let received = Family::<Labels, Counter>::default();
        let queued = Family::<Labels, Counter>::default();
        let duplicates = Family::<Labels, Counter>::default();
        let ignored = Family::<Labels, Counter>::default();
        let rejected = Family::<Labels, Counter>::default();
        let depth = Gauge::<i64, AtomicI64>::default();
        // From a cached re-check (tens of ms) to a cold multi-GB image.
        let duration = Histogram::new([
            0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
        ]);
        let verdicts = Family::<Labels, Counter>::default();
        let retries = Counter::default();
        let publish = Family::<Labels, Counter>::default();
        let inbound_refused = Family::<Labels, Counter>::default();
        let pruned = Family::<Labels, Counter>::default();
        let admission = Family::<Labels, Counter>::default();
        registry.register(
            "events_received",
            "Events in authenticated, well-formed deliveries, by sender",
            received.clone(),
        );
        registry.register(
            "events_queued",
            "Pushes written to the queue",
            queued.clone(),
        );
        registry.register(
            "events_duplicate",
            "Pushes already queued or judged (re-sent deliveries, the same digest again)",
            duplicates.clone(),
        );
        registry.register(
            "events_ignored",
            "Events acknowledged and dropped (blob pushes, pulls, mounts, deletes), by reason",
            ignored.clone(),
        );
        registry.register(
            "events_rejected",
            "Deliveries or events refused, by reason",
            rejected.clone(),
        );
        registry.register("queue_depth", "Jobs queued or being judged", depth.clone());
        registry.register(
            "measurement_duration_seconds",
            "Time to judge one pushed image",
            duration.clone(),
        );
        registry.register("verdicts", "Verdicts recorded, by result", verdicts.clone());
        registry.register(
            "job_retries",
            "Judgements put back in the queue after a transient error",
            retries.clone(),
        );
        registry.register(
            "publish",
            "Verdicts published (GitHub commit status, notification), by target and result",
            publish.clone(),
        );
        registry.register(
            "inbound_refused",
            "Connections or requests turned away by an inbound limit, by limit",
            inbound_refused.clone(),
        );
        registry.register(
            "pruned",
            "Rows deleted by retention (--keep-verdicts), by table (verdicts, events)",
            pruned.clone(),
        );
        registry.register(
            "admission",
            "Admission reviews answered, by result (allowed, denied, audit_denied, \
             unmeasured_allowed, exempt, skipped, malformed, unauthorized)",
            admission.clone(),
        );
        Metrics {
            registry,
            received,
            queued,
            duplicates,
            ignored,
            rejected,
            depth,
            duration,
            verdicts,
            retries,
            publish,
            inbound_refused,
            pruned,
            admission,
        }
    }

    /// One admission review answered (or refused) as `result`.
    pub fn admission(&self, result: &'static str) {
        self.admission
            .get_or_create(&vec![("result", result)])
            .inc();
    }

    pub fn received(&self, sender: &'static str, n: u64) {
        self.received
            .get_or_create(&vec![("sender", sender)])
            .inc_by(n);
    }

    /// New jobs: the queue grew by `n`.
    pub fn queued(&self, sender: &'static str, n: u64) {
        self.queued
            .get_or_create(&vec![("sender", sender)])
            .inc_by(n);
        self.depth.inc_by(i64::try_from(n).unwrap_or(i64::MAX));
    }

    pub fn duplicates(&self, sender: &'static str, n: u64) {
        self.duplicates
            .get_or_create(&vec![("sender", sender)])
            .inc_by(n);
    }

    pub fn ignored(&self, sender: &'static str, reason: &'static str) {
        self.ignored
            .get_or_create(&vec![("sender", sender), ("reason", reason)])
            .inc();
    }

    pub fn rejected(&self, sender: &'static str, reason: &'static str) {
        self.rejected
            .get_or_create(&vec![("sender", sender), ("reason", reason)])
            .inc();
    }

    /// A verdict recorded: one job fewer in the queue.
    pub fn judged(&self, verdict: &'static str, seconds: f64) {
        self.verdicts
            .get_or_create(&vec![("verdict", verdict)])
            .inc();
        self.duration.observe(seconds);
        self.depth.dec();
    }

    /// The queue depth as the store counts it: at start, and from time to
    /// time (other replicas of a shared database move it too).
    pub fn set_depth(&self, depth: u64) {
        self.depth.set(i64::try_from(depth).unwrap_or(i64::MAX));
    }

    pub fn retried(&self) {
        self.retries.inc();
    }

    /// Rows of `what` (`verdicts`, `events`) retention deleted.
    pub fn pruned(&self, what: &'static str, n: u64) {
        self.pruned.get_or_create(&vec![("what", what)]).inc_by(n);
    }

    /// One verdict's publication to `target` (`github_status`, `notify`)
    /// ended as `result` (`ok`, `error`, `refused`: the image's labels
    /// name nothing a status may be posted on, `not_allowed`: they name a
    /// GitHub repository the configuration does not tie to the image's).
    pub fn published(&self, target: &'static str, result: &'static str) {
        self.publish
            .get_or_create(&vec![("target", target), ("result", result)])
            .inc();
    }

    /// A connection or request turned away by `limit` (`max_connections`,
    /// `max_in_flight`, `body_timeout`).
    pub fn inbound_refused(&self, limit: &'static str) {
        self.inbound_refused
            .get_or_create(&vec![("limit", limit)])
            .inc();
    }

    /// The text exposition. The queue depth is the kept figure: a scrape
    /// costs no query (the store's connections are the receivers').
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
