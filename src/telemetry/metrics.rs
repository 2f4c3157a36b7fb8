//! Every metric the collector exports, in one place; all names start with `hushtale_`.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use super::Reason;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: Reason,
}

impl EncodeLabelValue for Reason {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

/// Why the server closed a connection on its own.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum CloseReason {
    /// No first request within the header timeout.
    Late,
    /// No request within the idle timeout.
    Idle,
    /// Over `max_connections_per_ip`.
    PerAddress,
}

impl CloseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Late => "late",
            CloseReason::Idle => "idle",
            CloseReason::PerAddress => "per_address",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CloseLabel {
    pub reason: CloseReason,
}

impl EncodeLabelValue for CloseReason {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: u16,
}

/// Handles to the collector's metrics; cheap to clone into tasks.
#[derive(Clone)]
pub struct Metrics {
    pub batches_accepted: Counter,
    pub batches_duplicate: Counter,
    pub events_accepted: Counter,
    pub batches_dropped: Family<ReasonLabel, Counter>,
    pub events_dropped: Family<ReasonLabel, Counter>,
    pub batches_rejected: Family<ReasonLabel, Counter>,
    pub bytes_in: Counter,
    pub queue_depth: Gauge,
    pub flush_seconds: Histogram,
    pub group_batches: Histogram,
    pub responses: Family<StatusLabel, Counter>,
    /// Connections the server closed on its own.
    pub connections_closed: Family<CloseLabel, Counter>,
}

impl Metrics {
    pub fn new() -> (Self, Registry) {
        let m = Self {
            batches_accepted: Counter::default(),
            batches_duplicate: Counter::default(),
            events_accepted: Counter::default(),
            batches_dropped: Family::default(),
            events_dropped: Family::default(),
            batches_rejected: Family::default(),
            bytes_in: Counter::default(),
            queue_depth: Gauge::default(),
            flush_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            group_batches: Histogram::new(exponential_buckets(1.0, 2.0, 14)),
            responses: Family::default(),
            connections_closed: Family::default(),
        };
        let mut r = Registry::with_prefix("hushtale");
        r.register("batches_accepted", "Batches durably stored", m.batches_accepted.clone());
        r.register(
            "batches_duplicate",
            "Resent batches (same sid and seq) acknowledged without storing again",
            m.batches_duplicate.clone(),
        );
        r.register("events_accepted", "Events durably stored", m.events_accepted.clone());
        r.register(
            "batches_dropped",
            "Batches answered 204 but deliberately not stored (opt-out, bot)",
            m.batches_dropped.clone(),
        );
        r.register("events_dropped", "Events dropped from otherwise valid batches", m.events_dropped.clone());
        r.register("batches_rejected", "Batches refused with a 4xx or 5xx", m.batches_rejected.clone());
        r.register("bytes_in", "Bytes of /collect bodies received (on the wire)", m.bytes_in.clone());
        r.register("queue_depth", "Batches waiting for the writer", m.queue_depth.clone());
        r.register("flush_seconds", "Time to write and flush one group commit", m.flush_seconds.clone());
        r.register("group_batches", "Batches per group commit", m.group_batches.clone());
        r.register("http_responses", "HTTP responses by status", m.responses.clone());
        r.register(
            "connections_closed",
            "Connections closed by the server: late first request, idle, or over the per-address cap",
            m.connections_closed.clone(),
        );
        (m, r)
    }

    pub fn reject(&self, reason: Reason) {
        self.batches_rejected.get_or_create(&ReasonLabel { reason }).inc();
    }

    pub fn drop_batch(&self, reason: Reason) {
        self.batches_dropped.get_or_create(&ReasonLabel { reason }).inc();
    }

    pub fn drop_events(&self, reason: impl Into<Reason>, n: u64) {
        self.events_dropped.get_or_create(&ReasonLabel { reason: reason.into() }).inc_by(n);
    }

    pub fn close(&self, reason: CloseReason) {
        self.connections_closed.get_or_create(&CloseLabel { reason }).inc();
    }
}
