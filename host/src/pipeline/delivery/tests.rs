//! The delivery modes against test doubles of the producer and consumer:
//! commits, their failures, aborts, fencing and rebalances, which a live
//! broker reaches only by chance.

use super::fakes::{FakeConsumer, FakeProducer, Script, abortable, ack, fenced, output, tp};
use super::{AtLeastOnce, Delivery, ExactlyOnce, Output, Reread};
use crate::kafka::TransactionError;
use crate::ops::Telemetry;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

struct Bench<D> {
    delivery: D,
    out: Output<FakeProducer>,
    script: Arc<Mutex<Script>>,
    consumer: FakeConsumer,
    telemetry: Arc<Telemetry>,
}

fn at_least_once() -> Bench<AtLeastOnce> {
    let telemetry = Arc::new(Telemetry::default());
    let script = Arc::default();
    Bench {
        delivery: AtLeastOnce::new(Duration::from_secs(1), telemetry.clone()),
        out: output(&script),
        script,
        consumer: FakeConsumer::default(),
        telemetry,
    }
}

fn exactly_once() -> Bench<ExactlyOnce> {
    let telemetry = Arc::new(Telemetry::default());
    let script = Arc::default();
    Bench {
        delivery: ExactlyOnce::new(telemetry.clone()),
        out: output(&script),
        script,
        consumer: FakeConsumer::default(),
        telemetry,
    }
}

impl<D: Delivery<FakeProducer>> Bench<D> {
    fn assign(&mut self, partitions: &[i32]) {
        for p in partitions {
            self.delivery.assigned(&tp(*p));
        }
    }

    /// Partition `p` read and processed `first..next`.
    fn processed(&mut self, p: i32, first: i64, next: i64, ack: &Arc<crate::kafka::BatchAck>) {
        self.delivery.reading(&tp(p), first);
        self.delivery.produced(&tp(p), first, next, ack.clone());
    }

    fn commit(&mut self) -> anyhow::Result<Reread> {
        self.delivery.commit(&mut self.out, &self.consumer)
    }

    /// The next transaction commit fails with `e`.
    fn refuse_next_commit(&self, e: TransactionError) {
        self.script.lock().unwrap().commit_answers.push_back(Err(e));
    }

    fn poison(&mut self, e: TransactionError) {
        self.delivery.poison(e);
    }

    fn poisoned(&self) -> bool {
        self.delivery.is_poisoned()
    }

    fn recoveries(&self) -> u64 {
        self.telemetry.metrics.total("recoveries")
    }
}

#[test]
fn at_least_once_commits_only_what_kafka_acknowledged_in_order() {
    let mut b = at_least_once();
    b.assign(&[0]);
    let (first, second) = (ack(2), ack(1));
    b.processed(0, 0, 10, &first);
    b.processed(0, 10, 20, &second);
    second.answered(None);
    b.commit().unwrap();
    assert_eq!(
        b.consumer.commits(),
        Vec::<Vec<_>>::new(),
        "the first batch is not acknowledged yet"
    );
    first.answered(None);
    b.commit().unwrap();
    assert!(
        b.consumer.commits().is_empty(),
        "one output of two answered for"
    );
    first.answered(None);
    b.commit().unwrap();
    assert_eq!(b.consumer.commits(), vec![vec![(tp(0), 20)]]);
    // Nothing new: nothing committed again.
    b.commit().unwrap();
    assert!(b.consumer.commits().is_empty());
}

#[test]
fn at_least_once_retries_a_failed_commit_at_the_next() {
    let mut b = at_least_once();
    b.assign(&[0, 1]);
    let a = ack(0);
    b.processed(0, 0, 5, &a);
    b.processed(1, 7, 9, &a);
    *b.consumer.failing_commits.lock().unwrap() = 1;
    b.commit().unwrap();
    assert!(b.consumer.commits().is_empty());
    b.commit().unwrap();
    assert_eq!(b.consumer.commits(), vec![vec![(tp(0), 5), (tp(1), 9)]]);
}

/// A commit is sent without waiting; when the broker refuses it, the
/// next commit sends every partition's offset again, moved or not.
#[test]
fn at_least_once_sends_every_offset_again_after_a_refused_commit() {
    let mut b = at_least_once();
    b.assign(&[0, 1]);
    let a = ack(0);
    b.processed(0, 0, 5, &a);
    b.processed(1, 7, 9, &a);
    b.commit().unwrap();
    assert_eq!(b.consumer.commits(), vec![vec![(tp(0), 5), (tp(1), 9)]]);
    // Refused by the broker after it was sent; partition 1 moves on.
    b.consumer.async_refused.store(true, Ordering::Release);
    b.processed(1, 9, 12, &a);
    b.commit().unwrap();
    assert_eq!(b.consumer.commits(), vec![vec![(tp(0), 5), (tp(1), 12)]]);
    // Accepted: only what moves is sent.
    b.processed(1, 12, 13, &a);
    b.commit().unwrap();
    assert_eq!(b.consumer.commits(), vec![vec![(tp(1), 13)]]);
}

#[test]
fn at_least_once_reads_a_batch_kafka_did_not_take_whole_again() {
    let mut b = at_least_once();
    b.assign(&[0]);
    let (good, bad, later) = (ack(1), ack(2), ack(1));
    b.processed(0, 0, 10, &good);
    b.processed(0, 10, 20, &bad);
    b.processed(0, 20, 30, &later);
    good.answered(None);
    bad.answered(None);
    bad.answered(Some("Broker: Message size too large".into()));
    later.answered(None);
    let reread = b.commit().unwrap();
    assert_eq!(reread.partitions, vec![tp(0)]);
    assert_eq!(b.consumer.seeks(), vec![(tp(0), 10)]);
    // What was acknowledged before the failed batch is committed; nothing
    // after it, though acknowledged, is.
    assert_eq!(b.consumer.commits(), vec![vec![(tp(0), 10)]]);
    assert_eq!(b.recoveries(), 1);
    // Processed again, the batch's outcome commits normally.
    let again = ack(0);
    b.processed(0, 10, 30, &again);
    b.commit().unwrap();
    assert_eq!(b.consumer.commits(), vec![vec![(tp(0), 30)]]);
}

#[test]
fn at_least_once_commits_revoked_partitions_and_forgets_them() {
    let mut b = at_least_once();
    b.assign(&[0, 1]);
    let (a0, a1) = (ack(0), ack(1));
    b.processed(0, 0, 4, &a0);
    b.processed(1, 0, 6, &a1);
    let reread = b
        .delivery
        .revoking(&mut b.out, &b.consumer, &[tp(0), tp(1)])
        .unwrap();
    assert_eq!(reread, Reread::default());
    assert_eq!(
        b.script.lock().unwrap().flushes,
        1,
        "outputs are delivered first"
    );
    // Partition 1's batch is not acknowledged: its next owner reads it.
    assert_eq!(b.consumer.commits(), vec![vec![(tp(0), 4)]]);
    a1.answered(None);
    b.commit().unwrap();
    assert!(
        b.consumer.commits().is_empty(),
        "a revoked partition is never committed again"
    );
}

#[test]
fn at_least_once_survives_a_commit_refused_during_revocation() {
    let mut b = at_least_once();
    b.assign(&[0]);
    b.processed(0, 0, 4, &ack(0));
    *b.consumer.failing_commits.lock().unwrap() = 1;
    b.delivery
        .revoking(&mut b.out, &b.consumer, &[tp(0)])
        .expect("the next owner reads the partition again; the pipeline goes on");
}

#[test]
fn at_least_once_rewinds_to_the_last_acknowledged_batch_with_a_new_producer() {
    let mut b = at_least_once();
    b.assign(&[0, 1]);
    let (done, pending) = (ack(0), ack(3));
    b.processed(0, 0, 10, &done);
    b.processed(0, 10, 20, &pending);
    b.processed(1, 50, 60, &ack(1));
    b.commit().unwrap();
    assert_eq!(b.consumer.commits(), vec![vec![(tp(0), 10)]]);
    let reread = b.delivery.producer_failed(&mut b.out, &b.consumer).unwrap();
    assert_eq!(reread.partitions, vec![tp(0), tp(1)]);
    assert_eq!(b.script.lock().unwrap().made, 2);
    assert_eq!(b.consumer.seeks(), vec![(tp(0), 10), (tp(1), 50)]);
    // The old producer's batches are forgotten, not committed late.
    pending.answered(None);
    pending.answered(None);
    pending.answered(None);
    b.commit().unwrap();
    assert!(b.consumer.commits().is_empty());
}

#[test]
fn exactly_once_commits_the_open_transaction_with_its_offsets() {
    let mut b = exactly_once();
    b.assign(&[0, 1]);
    b.processed(0, 0, 10, &ack(0));
    b.processed(1, 3, 5, &ack(0));
    b.processed(0, 10, 12, &ack(0));
    assert_eq!(
        b.commit().unwrap(),
        Reread {
            committed: vec![(tp(0), 12), (tp(1), 5)],
            ..Reread::default()
        },
        "the partitions' input is final up to the offsets committed"
    );
    assert_eq!(
        b.script.lock().unwrap().transactions,
        vec![vec![(tp(0), 12), (tp(1), 5)]]
    );
    // Nothing processed since: no empty transaction.
    b.commit().unwrap();
    assert_eq!(b.script.lock().unwrap().transactions.len(), 1);
    assert_eq!(b.telemetry.metrics.total("transactions"), 1);
    assert!(
        b.consumer.commits().is_empty(),
        "offsets go in the transaction only"
    );
}

#[test]
fn exactly_once_aborts_a_refused_transaction_and_reads_from_the_last_commit() {
    let mut b = exactly_once();
    b.assign(&[0, 1]);
    b.processed(0, 0, 10, &ack(0));
    b.commit().unwrap();
    b.processed(0, 10, 20, &ack(0));
    b.processed(1, 40, 45, &ack(0));
    b.refuse_next_commit(abortable());
    let reread = b.commit().unwrap();
    assert_eq!(reread.partitions, vec![tp(0), tp(1)]);
    assert!(
        reread.hold_until.is_some(),
        "a refusing broker gets a back-off"
    );
    let s = b.script.lock().unwrap();
    assert_eq!((s.aborts, s.made), (1, 1), "aborted, the producer kept");
    drop(s);
    assert_eq!(b.consumer.seeks(), vec![(tp(0), 10), (tp(1), 40)]);
    assert_eq!(b.recoveries(), 1);
    // Nothing of the aborted transaction is committed later.
    b.commit().unwrap();
    assert_eq!(b.script.lock().unwrap().transactions.len(), 1);
}

#[test]
fn exactly_once_replaces_a_fenced_producer_and_reads_from_the_groups_commit() {
    let mut b = exactly_once();
    b.consumer.group.insert(tp(0), 17);
    b.assign(&[0, 1]);
    b.processed(0, 17, 30, &ack(0));
    b.processed(1, 2, 4, &ack(0));
    b.refuse_next_commit(fenced());
    let reread = b.commit().unwrap();
    assert_eq!(reread.partitions, vec![tp(0), tp(1)]);
    let s = b.script.lock().unwrap();
    assert_eq!(
        (s.made, s.aborts),
        (2, 0),
        "a new producer, no abort on the fenced one"
    );
    drop(s);
    // Partition 1 has no commit in the group: it starts where it started.
    assert_eq!(b.consumer.seeks(), vec![(tp(0), 17), (tp(1), 2)]);
}

#[test]
fn exactly_once_replaces_the_producer_when_aborting_fails() {
    let mut b = exactly_once();
    b.assign(&[0]);
    b.processed(0, 0, 3, &ack(0));
    {
        let mut s = b.script.lock().unwrap();
        s.commit_answers.push_back(Err(abortable()));
        s.abort_answers.push_back(Err(fenced()));
    }
    b.commit().unwrap();
    assert_eq!(b.script.lock().unwrap().made, 2);
    assert_eq!(b.consumer.seeks(), vec![(tp(0), 0)]);
}

#[test]
fn exactly_once_aborts_a_poisoned_transaction_without_committing_it() {
    let mut b = exactly_once();
    b.assign(&[0]);
    b.processed(0, 0, 3, &ack(0));
    b.poison(TransactionError::RecordRefused {
        topic: "orders-out".into(),
        reason: "too_large",
    });
    assert!(b.poisoned());
    b.commit().unwrap();
    let s = b.script.lock().unwrap();
    assert!(s.transactions.is_empty());
    assert_eq!((s.aborts, s.made), (1, 1));
}

#[test]
fn exactly_once_stops_after_too_many_aborts_in_a_row_and_not_before() {
    let mut b = exactly_once();
    b.assign(&[0]);
    for _ in 0..10 {
        b.processed(0, 0, 3, &ack(0));
        b.refuse_next_commit(abortable());
        b.commit().expect("ten aborts in a row are still retried");
    }
    // A commit that succeeds starts the count again.
    b.processed(0, 0, 3, &ack(0));
    b.commit().unwrap();
    for _ in 0..10 {
        b.processed(0, 3, 4, &ack(0));
        b.refuse_next_commit(abortable());
        b.commit().unwrap();
    }
    b.processed(0, 3, 4, &ack(0));
    b.refuse_next_commit(abortable());
    let err = b.commit().unwrap_err();
    assert!(
        format!("{err:#}").contains("10 transactions in a row were aborted"),
        "{err:#}"
    );
}

#[test]
fn exactly_once_stops_when_producers_keep_being_fenced() {
    let mut b = exactly_once();
    b.assign(&[0]);
    for _ in 0..5 {
        b.processed(0, 0, 3, &ack(0));
        b.refuse_next_commit(fenced());
        b.commit().unwrap();
    }
    b.processed(0, 0, 3, &ack(0));
    b.refuse_next_commit(fenced());
    let err = b.commit().unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("replaced 5 times") && msg.contains("'orders-pipeline-0'"),
        "{msg}"
    );
}

#[test]
fn exactly_once_revocation_commits_revoked_partitions_and_rewinds_only_the_rest() {
    let mut b = exactly_once();
    b.assign(&[0, 1]);
    b.processed(0, 0, 8, &ack(0));
    b.processed(1, 0, 6, &ack(0));
    b.delivery
        .revoking(&mut b.out, &b.consumer, &[tp(0)])
        .unwrap();
    assert_eq!(
        b.script.lock().unwrap().transactions,
        vec![vec![(tp(0), 8), (tp(1), 6)]],
        "the revoked partition's work is committed with the rest"
    );
    // Refused, a later transaction rewinds only what stayed ours.
    b.processed(1, 6, 9, &ack(0));
    b.refuse_next_commit(abortable());
    let reread = b.commit().unwrap();
    assert_eq!(reread.partitions, vec![tp(1)]);
    assert_eq!(b.consumer.seeks(), vec![(tp(1), 6)]);
}

#[test]
fn exactly_once_revocation_of_a_poisoned_transaction_rereads_what_stays() {
    let mut b = exactly_once();
    b.assign(&[0, 1]);
    b.processed(0, 0, 8, &ack(0));
    b.processed(1, 0, 6, &ack(0));
    b.poison(abortable());
    let reread = b
        .delivery
        .revoking(&mut b.out, &b.consumer, &[tp(0)])
        .unwrap();
    assert_eq!(
        reread.partitions,
        vec![tp(1)],
        "the loop throws partition 1's batch away"
    );
    assert!(b.script.lock().unwrap().transactions.is_empty());
    assert_eq!(b.consumer.seeks(), vec![(tp(1), 0)]);
}
