//! Prometheus metrics of the gateway, served at `GET /metrics` in the text exposition format.
//!
//! | metric | kind | meaning |
//! |---|---|---|
//! | `faas_gateway_events_received_total` | counter | events accepted at ingress (stored, duplicates excluded) |
//! | `faas_gateway_events_duplicate_total` | counter | events refused as duplicates (`source` + `id` seen) |
//! | `faas_gateway_deliveries_total{result}` | counter | delivery attempts by result: `delivered`, `retried`, `deadlettered`, `dropped` |
//! | `faas_gateway_backlog` | gauge | deliveries not yet done (the store's count, read at scrape time) |
//! | `faas_gateway_delivery_latency_seconds` | histogram | ingress to successful delivery |
//! | `faas_gateway_state_operations_total{op,outcome}` | counter | state service requests (`op`: `get`, `set`, `delete`, `list`; `outcome`: `ok`, `absent`, `conflict`, `refused`, `failed`) |
//! | `faas_gateway_state_operation_seconds{op}` | histogram | time the state service took to answer |
//!
//! ```
//! let metrics = faas_gateway::metrics::Metrics::new();
//! metrics.received(2);
//! metrics.delivery(faas_gateway::metrics::DeliveryResult::Delivered);
//! let text = metrics.render(7);
//! assert!(text.contains("faas_gateway_events_received_total 2"));
//! assert!(text.contains(r#"faas_gateway_deliveries_total{result="delivered"} 1"#));
//! assert!(text.contains("faas_gateway_backlog 7"));
//! ```

use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// How one delivery attempt ended, as counted in `faas_gateway_deliveries_total{result}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryResult {
    /// The sink accepted the event (2xx).
    Delivered,
    /// The attempt failed with a retryable outcome; another attempt is scheduled.
    Retried,
    /// Given up (retries exhausted or a non-retryable status) and handed to the dead-letter sink.
    Deadlettered,
    /// Given up with no dead-letter sink configured, or the subscription was deleted meanwhile.
    Dropped,
}

impl DeliveryResult {
    /// The label value: `delivered`, `retried`, `deadlettered` or `dropped`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryResult::Delivered => "delivered",
            DeliveryResult::Retried => "retried",
            DeliveryResult::Deadlettered => "deadlettered",
            DeliveryResult::Dropped => "dropped",
        }
    }
}

impl EncodeLabelValue for DeliveryResult {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        use std::fmt::Write as _;
        encoder.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResultLabel {
    result: DeliveryResult,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StatusLabel {
    status: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StateLabel {
    op: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OpLabel {
    op: &'static str,
}

type OpHistograms = Family<OpLabel, Histogram, fn() -> Histogram>;

fn state_latency() -> Histogram {
    // 0.1 ms .. ~3 s.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(0.0001, 2.0, 15))
}

/// The gateway's metrics; cheap to share behind an `Arc`.
pub struct Metrics {
    registry: Registry,
    received: Counter,
    duplicates: Counter,
    deliveries: Family<ResultLabel, Counter>,
    backlog: Gauge,
    latency: Histogram,
    runs_started: Counter,
    runs_ended: Family<StatusLabel, Counter>,
    transitions: Counter,
    step_latency: Histogram,
    state_operations: Family<StateLabel, Counter>,
    state_latency: OpHistograms,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").field("received", &self.received.get()).finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Fresh metrics, all zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("faas_gateway");
        let received = Counter::default();
        let duplicates = Counter::default();
        let deliveries = Family::<ResultLabel, Counter>::default();
        let backlog = Gauge::default();
        // 1 ms .. ~65 s.
        let latency = Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(0.001, 2.0, 17));
        registry.register("events_received", "Events accepted at ingress and stored", received.clone());
        registry.register(
            "events_duplicate",
            "Events refused as duplicates (source + id already seen)",
            duplicates.clone(),
        );
        registry.register("deliveries", "Delivery attempts by result", deliveries.clone());
        registry.register("backlog", "Deliveries not yet done", backlog.clone());
        registry.register("delivery_latency_seconds", "Time from ingress to successful delivery", latency.clone());
        for result in
            [DeliveryResult::Delivered, DeliveryResult::Retried, DeliveryResult::Deadlettered, DeliveryResult::Dropped]
        {
            // Show every series from the start, at zero.
            let _ = deliveries.get_or_create(&ResultLabel { result });
        }
        let runs_started = Counter::default();
        let runs_ended = Family::<StatusLabel, Counter>::default();
        let transitions = Counter::default();
        let step_latency = Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(0.0005, 2.0, 18));
        registry.register("runs_started", "Composition runs started by the durable conductor", runs_started.clone());
        registry.register("runs_ended", "Composition runs ended, by status", runs_ended.clone());
        registry.register("run_transitions", "Steps and timers the conductor completed", transitions.clone());
        registry.register("run_step_seconds", "Time a conducted step took, the call included", step_latency.clone());
        for status in ["succeeded", "failed", "cancelled"] {
            let _ = runs_ended.get_or_create(&StatusLabel { status: status.into() });
        }
        let state_operations = Family::<StateLabel, Counter>::default();
        let state_latency: OpHistograms = Family::new_with_constructor(state_latency);
        registry.register(
            "state_operations",
            "State service requests, by operation and outcome",
            state_operations.clone(),
        );
        registry.register("state_operation_seconds", "Time the state service took to answer", state_latency.clone());
        Metrics {
            registry,
            received,
            duplicates,
            deliveries,
            backlog,
            latency,
            runs_started,
            runs_ended,
            transitions,
            step_latency,
            state_operations,
            state_latency,
        }
    }

    /// Counts one state service request `op` (`get`, `set`, `delete`, `list`) that ended with
    /// `outcome` (`ok`, `absent`, `conflict`, `refused`, `failed`) after `took`.
    ///
    /// ```
    /// let metrics = faas_gateway::metrics::Metrics::new();
    /// metrics.state_operation("set", "conflict", std::time::Duration::from_millis(2));
    /// let text = metrics.render(0);
    /// assert!(text.contains(r#"faas_gateway_state_operations_total{op="set",outcome="conflict"} 1"#), "{text}");
    /// assert!(text.contains(r#"faas_gateway_state_operation_seconds_count{op="set"} 1"#), "{text}");
    /// ```
    pub fn state_operation(&self, op: &'static str, outcome: &'static str, took: Duration) {
        self.state_operations.get_or_create(&StateLabel { op, outcome }).inc();
        self.state_latency.get_or_create(&OpLabel { op }).observe(took.as_secs_f64());
    }

    /// Counts `n` events stored at ingress.
    pub fn received(&self, n: u64) {
        self.received.inc_by(n);
    }

    /// Counts `n` events refused as duplicates.
    pub fn duplicates(&self, n: u64) {
        self.duplicates.inc_by(n);
    }

    /// Counts one delivery outcome.
    pub fn delivery(&self, result: DeliveryResult) {
        self.deliveries.get_or_create(&ResultLabel { result }).inc();
    }

    /// Records the ingress-to-delivery latency of a delivered event.
    pub fn latency(&self, latency: Duration) {
        self.latency.observe(latency.as_secs_f64());
    }

    /// Counts a run started.
    pub fn run_started(&self) {
        self.runs_started.inc();
    }

    /// Counts a run ended with `status` (`succeeded`, `failed`, `cancelled`).
    pub fn run_ended(&self, status: &str) {
        self.runs_ended.get_or_create(&StatusLabel { status: status.into() }).inc();
    }

    /// Counts one transition of a run, whose step took `took`.
    pub fn transition(&self, took: Duration) {
        self.transitions.inc();
        self.step_latency.observe(took.as_secs_f64());
    }

    /// Renders every metric in the Prometheus text format, with the backlog gauge set to `backlog`.
    pub fn render(&self, backlog: u64) -> String {
        self.backlog.set(i64::try_from(backlog).unwrap_or(i64::MAX));
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
