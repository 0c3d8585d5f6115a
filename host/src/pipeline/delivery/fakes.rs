//! Test doubles of the Kafka side: a producer and a consumer that record
//! what the delivery modes ask of them and answer as scripted.

use super::Output;
use crate::kafka::{
    BatchAck, Committer, ErrorCode, GroupMetadata, KafkaError, OutRecord, Producer, Refusal,
    SendError, TopicPartition, TransactionError,
};
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the producers (the first and every replacement) were asked, and
/// the answers they give, in order.
#[derive(Default)]
pub struct Script {
    /// Producers made so far.
    pub made: usize,
    /// Offsets of each transaction committed.
    pub transactions: Vec<Vec<(TopicPartition, i64)>>,
    pub aborts: usize,
    pub flushes: usize,
    /// Answers to the next commit_transaction calls (then `Ok`).
    pub commit_answers: VecDeque<Result<(), TransactionError>>,
    /// Answers to the next abort_and_begin calls (then `Ok`).
    pub abort_answers: VecDeque<Result<(), TransactionError>>,
}

pub struct FakeProducer(Arc<Mutex<Script>>);

impl Producer for FakeProducer {
    fn admit(&self, _topic: &str, _bytes: usize) -> Result<(), Refusal> {
        Ok(())
    }

    fn send<'h>(
        &self,
        _record: OutRecord<'_, impl Iterator<Item = (&'h [u8], Option<&'h [u8]>)>>,
        ack: &Arc<BatchAck>,
    ) -> Result<(), SendError> {
        ack.queued();
        Ok(())
    }

    fn poll(&self) {}

    fn flush(&self, _timeout: Duration) -> Result<(), KafkaError> {
        self.0.lock().unwrap().flushes += 1;
        Ok(())
    }

    fn is_fatal(&self) -> bool {
        false
    }

    fn commit_transaction(
        &self,
        offsets: &[(TopicPartition, i64)],
        _member: &dyn Committer,
    ) -> Result<(), TransactionError> {
        let mut s = self.0.lock().unwrap();
        let answer = s.commit_answers.pop_front().unwrap_or(Ok(()));
        if answer.is_ok() {
            s.transactions.push(offsets.to_vec());
        }
        answer
    }

    fn abort_and_begin(&self) -> Result<(), TransactionError> {
        let mut s = self.0.lock().unwrap();
        s.aborts += 1;
        s.abort_answers.pop_front().unwrap_or(Ok(()))
    }

    fn abort_transaction(&self) -> Result<(), TransactionError> {
        self.0.lock().unwrap().aborts += 1;
        Ok(())
    }
}

/// An output whose producers share `script`.
pub fn output(script: &Arc<Mutex<Script>>) -> Output<FakeProducer> {
    let script = script.clone();
    Output::new(
        Box::new(move || {
            script.lock().unwrap().made += 1;
            Ok(FakeProducer(script.clone()))
        }),
        "orders-pipeline-0",
    )
    .unwrap()
}

/// The consumer's side: commits and seeks, and the group's offsets.
#[derive(Default)]
pub struct FakeConsumer {
    pub commits: Mutex<Vec<Vec<(TopicPartition, i64)>>>,
    /// Commits that fail before one succeeds.
    pub failing_commits: Mutex<usize>,
    pub seeks: Mutex<Vec<(TopicPartition, i64)>>,
    /// The group's committed offsets.
    pub group: BTreeMap<TopicPartition, i64>,
    /// The broker refused a commit sent without waiting.
    pub async_refused: AtomicBool,
}

impl FakeConsumer {
    pub fn seeks(&self) -> Vec<(TopicPartition, i64)> {
        std::mem::take(&mut self.seeks.lock().unwrap())
    }

    pub fn commits(&self) -> Vec<Vec<(TopicPartition, i64)>> {
        std::mem::take(&mut self.commits.lock().unwrap())
    }
}

impl Committer for FakeConsumer {
    fn commit(&self, offsets: &[(TopicPartition, i64)]) -> Result<(), KafkaError> {
        if offsets.is_empty() {
            return Ok(());
        }
        let mut failing = self.failing_commits.lock().unwrap();
        if *failing > 0 {
            *failing -= 1;
            return Err(KafkaError::ConsumerCommit(ErrorCode::RebalanceInProgress));
        }
        self.commits.lock().unwrap().push(offsets.to_vec());
        Ok(())
    }

    fn async_commit_refused(&self) -> bool {
        self.async_refused.swap(false, Ordering::AcqRel)
    }

    fn group_metadata(&self) -> Option<GroupMetadata> {
        None
    }

    fn seek(&self, partition: &TopicPartition, next: i64) -> Result<(), KafkaError> {
        self.seeks.lock().unwrap().push((partition.clone(), next));
        Ok(())
    }

    fn committed(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<Vec<(TopicPartition, Option<i64>)>, KafkaError> {
        Ok(partitions
            .iter()
            .map(|tp| (tp.clone(), self.group.get(tp).copied()))
            .collect())
    }
}

pub fn tp(partition: i32) -> TopicPartition {
    TopicPartition {
        topic: "orders".into(),
        partition,
    }
}

/// Acknowledgements of a batch with `outputs` outputs queued.
pub fn ack(outputs: usize) -> Arc<BatchAck> {
    let ack = Arc::new(BatchAck::default());
    for _ in 0..outputs {
        ack.queued();
    }
    ack
}

/// Kafka refusing a transaction in a way the producer survives.
pub fn abortable() -> TransactionError {
    TransactionError::Abortable(KafkaError::MessageProduction(ErrorCode::NotCoordinator))
}

/// A newer producer with the same transactional id fenced this one.
pub fn fenced() -> TransactionError {
    TransactionError::Fatal(KafkaError::MessageProduction(ErrorCode::ProducerFenced))
}
