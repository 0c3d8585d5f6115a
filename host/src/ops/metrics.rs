//! The Prometheus metrics of `wasmpipe run`. Every label has a bounded set
//! of values: topics are capped (see [`MAX_TOPICS`]), partitions are the
//! assigned ones, plugins are the chain's, kinds and results are fixed.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::collections::BTreeSet;
use std::sync::Mutex;

/// Distinct topic label values kept; outputs to further topics (a plugin
/// routing by a field of the record) are counted under `topic="_other"`.
pub const MAX_TOPICS: usize = 64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicLabel {
    pub topic: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabels {
    pub topic: String,
    pub partition: String,
}

/// One plugin's state of one input partition.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub plugin: String,
    pub topic: String,
    pub partition: String,
}

impl StateLabels {
    fn new(plugin: &str, topic: &str, partition: i32) -> Self {
        StateLabels {
            plugin: plugin.to_owned(),
            topic: topic.to_owned(),
            partition: partition.to_string(),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    pub plugin: String,
    pub kind: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginLabels {
    pub plugin: String,
    pub sha256: String,
}

/// The metrics, registered under the `wasmpipe_` prefix.
pub struct Metrics {
    registry: Registry,
    topics: Mutex<BTreeSet<String>>,
    consumed: Family<TopicLabel, Counter>,
    produced: Family<TopicLabel, Counter>,
    dead_lettered: Family<FailureLabels, Counter>,
    skipped: Family<FailureLabels, Counter>,
    transform_errors: Family<FailureLabels, Counter>,
    transform_seconds: Histogram,
    batch_records: Histogram,
    lag: Family<PartitionLabels, Gauge>,
    rebalances: Family<OutcomeLabel, Counter>,
    reloads: Family<OutcomeLabel, Counter>,
    plugin_info: Family<PluginLabels, Gauge>,
    transactions: Counter,
    commit_seconds: Histogram,
    recoveries: Counter,
    changelog_records: Counter,
    restored_records: Counter,
    restore_seconds: Histogram,
    restore_remaining: Family<StateLabels, Gauge>,
    state_entries: Family<StateLabels, Gauge>,
    state_bytes: Family<StateLabels, Gauge>,
    registry_unreachable: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("wasmpipe");
        let m = Metrics {
            registry: Registry::default(),
            topics: Mutex::default(),
            consumed: Family::default(),
            produced: Family::default(),
            dead_lettered: Family::default(),
            skipped: Family::default(),
            transform_errors: Family::default(),
            // 10 µs … ~10 s.
            transform_seconds: Histogram::new(exponential_buckets(1e-5, 4.0, 11)),
            // 1 … 4096 records.
            batch_records: Histogram::new(exponential_buckets(1.0, 2.0, 13)),
            lag: Family::default(),
            rebalances: Family::default(),
            reloads: Family::default(),
            plugin_info: Family::default(),
            transactions: Counter::default(),
            // 1 ms … ~65 s.
            commit_seconds: Histogram::new(exponential_buckets(1e-3, 2.0, 17)),
            recoveries: Counter::default(),
            changelog_records: Counter::default(),
            restored_records: Counter::default(),
            // 1 ms … ~65 s.
            restore_seconds: Histogram::new(exponential_buckets(1e-3, 2.0, 17)),
            restore_remaining: Family::default(),
            state_entries: Family::default(),
            state_bytes: Family::default(),
            registry_unreachable: Counter::default(),
        };
        registry.register(
            "records_consumed",
            "Records read from Kafka",
            m.consumed.clone(),
        );
        registry.register(
            "records_produced",
            "Outputs produced (queued to the producer), by destination topic",
            m.produced.clone(),
        );
        registry.register(
            "records_dead_lettered",
            "Records sent to the dead-letter topic, by plugin and failure kind",
            m.dead_lettered.clone(),
        );
        registry.register(
            "records_skipped",
            "Failed records skipped (--on-error skip), by plugin and failure kind",
            m.skipped.clone(),
        );
        registry.register(
            "transform_errors",
            "Records a plugin failed on (trap, deadline, memory, error, produce), by plugin and kind",
            m.transform_errors.clone(),
        );
        registry.register(
            "transform_duration_seconds",
            "Time to run the plugin chain over one batch",
            m.transform_seconds.clone(),
        );
        registry.register(
            "batch_records",
            "Records per batch run through the chain",
            m.batch_records.clone(),
        );
        registry.register(
            "consumer_lag",
            "Records behind the end of each assigned partition (librdkafka statistics)",
            m.lag.clone(),
        );
        registry.register(
            "rebalances",
            "Partition assignments and revocations",
            m.rebalances.clone(),
        );
        registry.register(
            "reloads",
            "Plugin sets offered by the reloader: swapped in, or refused",
            m.reloads.clone(),
        );
        registry.register(
            "plugin_info",
            "1 for each plugin of the running chain",
            m.plugin_info.clone(),
        );
        registry.register(
            "transactions",
            "Exactly-once transactions committed",
            m.transactions.clone(),
        );
        registry.register(
            "transaction_commit_duration_seconds",
            "Time to commit one exactly-once transaction (offsets, flush, end), during which the pipeline processes nothing",
            m.commit_seconds.clone(),
        );
        registry.register(
            "recoveries",
            "Times the records since the last commit were thrown away and processed again (aborted transaction, replaced producer)",
            m.recoveries.clone(),
        );
        registry.register(
            "state_changelog_records",
            "Plugin state writes produced to the changelog topics",
            m.changelog_records.clone(),
        );
        registry.register(
            "state_restored_records",
            "Changelog records applied to the state stores when partitions were assigned or rewound",
            m.restored_records.clone(),
        );
        registry.register(
            "state_restore_duration_seconds",
            "Time to restore one plugin's state of one partition, during which the partition waits",
            m.restore_seconds.clone(),
        );
        registry.register(
            "state_restore_remaining_records",
            "Changelog offsets left to read in each restore under way (gone when it ends)",
            m.restore_remaining.clone(),
        );
        registry.register(
            "state_entries",
            "Entries in each plugin's store of each assigned partition, approximately (overwrites and deletes not yet compacted count)",
            m.state_entries.clone(),
        );
        registry.register(
            "state_disk_bytes",
            "Bytes on disk of each plugin's store of each assigned partition",
            m.state_bytes.clone(),
        );
        registry.register(
            "schema_registry_unreachable",
            "Times the schema registry did not answer the request made at start",
            m.registry_unreachable.clone(),
        );
        Metrics { registry, ..m }
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// The sum of counter `wasmpipe_<name>_total` over all its labels, as
    /// the text exposition shows it.
    pub fn total(&self, name: &str) -> u64 {
        self.total_where(name, "")
    }

    /// [`Metrics::total`] over the series whose labels contain `label`,
    /// such as `outcome="swapped"`.
    pub fn total_where(&self, name: &str, label: &str) -> u64 {
        self.sum(&format!("wasmpipe_{name}_total"), label) as u64
    }

    /// The sum of gauge `name` (without its `wasmpipe_` prefix) over all
    /// its series.
    pub fn gauge(&self, name: &str) -> i64 {
        self.sum(&format!("wasmpipe_{name}"), "") as i64
    }

    fn sum(&self, name: &str, label: &str) -> f64 {
        self.encode()
            .lines()
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with(['{', ' ']) && rest.contains(label))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    }

    fn topic(&self, topic: &str) -> TopicLabel {
        let mut topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        if topics.contains(topic) || topics.len() < MAX_TOPICS {
            if !topics.contains(topic) {
                topics.insert(topic.to_owned());
            }
            TopicLabel {
                topic: topic.to_owned(),
            }
        } else {
            TopicLabel {
                topic: "_other".into(),
            }
        }
    }

    pub(super) fn consumed(&self, topic: &str, n: u64) {
        self.consumed.get_or_create(&self.topic(topic)).inc_by(n);
    }

    pub(super) fn produced(&self, topic: &str, n: u64) {
        self.produced.get_or_create(&self.topic(topic)).inc_by(n);
    }

    fn failure(plugin: &str, kind: &str, reason: &str) -> FailureLabels {
        FailureLabels {
            plugin: plugin.to_owned(),
            kind: kind.to_owned(),
            reason: reason.to_owned(),
        }
    }

    /// A record failed in `plugin`: `kind` and `reason` as the dead
    /// letter's `wasmpipe.error.kind` and `wasmpipe.error.reason` headers.
    pub(super) fn transform_error(&self, plugin: &str, kind: &str, reason: &str) {
        self.transform_errors
            .get_or_create(&Self::failure(plugin, kind, reason))
            .inc();
    }

    pub(super) fn dead_lettered(&self, plugin: &str, kind: &str, reason: &str) {
        self.dead_lettered
            .get_or_create(&Self::failure(plugin, kind, reason))
            .inc();
    }

    pub(super) fn skipped(&self, plugin: &str, kind: &str, reason: &str) {
        self.skipped
            .get_or_create(&Self::failure(plugin, kind, reason))
            .inc();
    }

    pub(super) fn batch(&self, records: usize, seconds: f64) {
        self.batch_records.observe(records as f64);
        self.transform_seconds.observe(seconds);
    }

    /// Replaces the lag gauges with `lags` (topic, partition, lag): the
    /// partitions no longer assigned disappear.
    pub(super) fn lags(&self, lags: &[(String, i32, i64)]) {
        self.lag.clear();
        for (topic, partition, lag) in lags {
            self.lag
                .get_or_create(&PartitionLabels {
                    topic: topic.clone(),
                    partition: partition.to_string(),
                })
                .set(*lag);
        }
    }

    pub(super) fn registry_unreachable(&self) {
        self.registry_unreachable.inc();
    }

    /// `outcome`: "assigned" or "revoked".
    pub(super) fn rebalance(&self, outcome: &str) {
        self.rebalances
            .get_or_create(&OutcomeLabel {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// `outcome`: "swapped" or "refused".
    pub(super) fn reload(&self, outcome: &str) {
        self.reloads
            .get_or_create(&OutcomeLabel {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// The running chain: (name, sha256) per plugin.
    pub(super) fn plugins(&self, plugins: &[(String, String)]) {
        self.plugin_info.clear();
        for (plugin, sha256) in plugins {
            self.plugin_info
                .get_or_create(&PluginLabels {
                    plugin: plugin.clone(),
                    sha256: sha256.clone(),
                })
                .set(1);
        }
    }

    /// A transaction committed in `seconds`.
    pub(super) fn transaction(&self, seconds: f64) {
        self.transactions.inc();
        self.commit_seconds.observe(seconds);
    }

    pub(super) fn recovery(&self) {
        self.recoveries.inc();
    }

    pub(super) fn changelog_written(&self, records: u64) {
        self.changelog_records.inc_by(records);
    }

    pub(super) fn restored(
        &self,
        (plugin, topic, partition): (&str, &str, i32),
        records: u64,
        seconds: f64,
    ) {
        self.restored_records.inc_by(records);
        self.restore_seconds.observe(seconds);
        self.restore_remaining
            .remove(&StateLabels::new(plugin, topic, partition));
    }

    pub(super) fn restoring(&self, (plugin, topic, partition): (&str, &str, i32), remaining: i64) {
        self.restore_remaining
            .get_or_create(&StateLabels::new(plugin, topic, partition))
            .set(remaining);
    }

    pub(super) fn state_size(
        &self,
        (plugin, topic, partition): (&str, &str, i32),
        entries: u64,
        bytes: u64,
    ) {
        let labels = StateLabels::new(plugin, topic, partition);
        let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.state_entries
            .get_or_create(&labels)
            .set(gauge(entries));
        self.state_bytes.get_or_create(&labels).set(gauge(bytes));
    }

    /// The partition's state is no longer this process's.
    pub(super) fn state_released(&self, (plugin, topic, partition): (&str, &str, i32)) {
        let labels = StateLabels::new(plugin, topic, partition);
        self.state_entries.remove(&labels);
        self.state_bytes.remove(&labels);
        self.restore_remaining.remove(&labels);
    }
}
