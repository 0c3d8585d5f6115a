//! What `wasmpipe run` tells its operator: Prometheus metrics, liveness
//! and readiness, and the running plugin set, on one small HTTP listener.
//! No wasm and no Kafka here: the pipeline reports [`events`] and its
//! [`Health`] into [`Telemetry`], the listener reads them.

pub mod events;
mod metrics;
mod server;

pub use metrics::{MAX_TOPICS, Metrics};
pub use server::{Endpoints, OpsServer};

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What a run reports: its events, counted in the metrics, and its health.
#[derive(Debug, Default)]
pub struct Telemetry {
    pub metrics: Metrics,
    pub health: Health,
}

impl Telemetry {
    /// Logs `event` and counts it.
    pub fn emit(&self, event: impl events::Event) {
        event.emit(&self.metrics);
    }
}

/// Liveness and readiness, as the pipeline reports them.
#[derive(Debug, Default)]
pub struct Health {
    /// When the poll loop last went round ([`ms_at`]).
    heartbeat_ms: AtomicU64,
    /// Calls into Kafka in progress that carry their own timeout (a
    /// transaction commit retried while a broker restarts): slow, not
    /// stuck, so they do not make the process look dead.
    waiting: AtomicU32,
    /// Partitions whose plugin state is being restored: not ready until
    /// they are.
    restoring: AtomicU32,
    ready: AtomicBool,
}

/// Milliseconds from the first call in this process to `at`, plus one (so
/// that 0 means "never").
fn ms_at(at: Instant) -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    let base = *BASE.get_or_init(|| at);
    at.saturating_duration_since(base).as_millis() as u64 + 1
}

impl Health {
    /// The poll loop went round.
    pub fn beat(&self) {
        self.beat_at(Instant::now());
    }

    /// The poll loop went round at `now` (a time it read anyway: the loop
    /// runs once per record and reads the clock once).
    pub fn beat_at(&self, now: Instant) {
        self.heartbeat_ms.store(ms_at(now), Ordering::Relaxed);
    }

    /// Marks a bounded wait on Kafka until the guard is dropped.
    pub fn waiting(&self) -> Waiting<'_> {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        Waiting(self)
    }

    /// Plugins loaded and subscribed to the group (true), or stopping
    /// (false).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
        if ready {
            self.beat();
        }
    }

    /// Ready: plugins loaded, subscribed, and no partition's state being
    /// restored.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed) && self.restoring.load(Ordering::Relaxed) == 0
    }

    /// Marks a state restore, which is also a bounded wait on Kafka,
    /// until the guard is dropped.
    pub fn restoring(&self) -> Restoring<'_> {
        self.restoring.fetch_add(1, Ordering::Relaxed);
        Restoring(self.waiting())
    }

    /// Alive unless the poll loop has not gone round for `stale` while
    /// not waiting on Kafka. A broker outage alone never makes the process
    /// look dead: restarting it would not bring the broker back.
    pub fn check_live(&self, stale: Duration) -> Result<(), String> {
        let last = self.heartbeat_ms.load(Ordering::Relaxed);
        if last == 0 || self.waiting.load(Ordering::Relaxed) > 0 {
            return Ok(());
        }
        let age = Duration::from_millis(ms_at(Instant::now()).saturating_sub(last));
        if age > stale {
            return Err(format!(
                "the poll loop has not gone round for {age:?} (limit {stale:?})"
            ));
        }
        Ok(())
    }
}

/// See [`Health::restoring`].
pub struct Restoring<'a>(Waiting<'a>);

impl Drop for Restoring<'_> {
    fn drop(&mut self) {
        (self.0).0.restoring.fetch_sub(1, Ordering::Relaxed);
    }
}

/// See [`Health::waiting`].
pub struct Waiting<'a>(&'a Health);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::Relaxed);
        self.0.beat();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liveness_follows_the_loop_but_not_a_wait_on_kafka() {
        let h = Health::default();
        assert!(
            h.check_live(Duration::from_millis(1)).is_ok(),
            "not started yet"
        );
        h.beat();
        std::thread::sleep(Duration::from_millis(30));
        let err = h.check_live(Duration::from_millis(10)).unwrap_err();
        assert!(err.contains("has not gone round"), "{err}");
        {
            let _w = h.waiting();
            std::thread::sleep(Duration::from_millis(30));
            assert!(h.check_live(Duration::from_millis(10)).is_ok());
        }
        assert!(
            h.check_live(Duration::from_millis(10)).is_ok(),
            "the wait ended with a beat"
        );
    }

    #[test]
    fn not_ready_while_a_partitions_state_is_restored() {
        let h = Health::default();
        h.set_ready(true);
        {
            let _first = h.restoring();
            let second = h.restoring();
            assert!(!h.is_ready());
            std::thread::sleep(Duration::from_millis(30));
            assert!(
                h.check_live(Duration::from_millis(10)).is_ok(),
                "restoring is not stuck"
            );
            drop(second);
            assert!(!h.is_ready(), "one restore is still under way");
        }
        assert!(h.is_ready());
    }

    #[test]
    fn topic_labels_are_capped() {
        let m = Metrics::default();
        for i in 0..MAX_TOPICS + 10 {
            m.produced(&format!("t{i}"), 1);
        }
        m.produced("t0", 1);
        let text = m.encode();
        assert_eq!(
            text.matches("wasmpipe_records_produced_total{").count(),
            MAX_TOPICS + 1
        );
        assert!(
            text.contains("wasmpipe_records_produced_total{topic=\"_other\"} 10"),
            "{text}"
        );
        assert!(
            text.contains("wasmpipe_records_produced_total{topic=\"t0\"} 2"),
            "{text}"
        );
    }
}
