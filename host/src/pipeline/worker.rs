//! One assigned partition: its chain instance, the batch being filled,
//! and the run of that batch through the chain to the producer.

use super::Settings;
use super::delivery::Delivery;
use super::failure::{self, DeadLetter};
use super::keyed::{Keeper, Sealed};
use crate::format::{Codec, FormatError, is_reserved_header};
use crate::kafka::{
    Fetched, OutRecord, Producer, RawHeaders, SendError, TopicPartition, TransactionError,
};
use crate::ops::Telemetry;
use crate::ops::events::{BatchRun, OutputsProduced, RecordFailed};
use crate::record::Batch;
use crate::runtime::{ChainInstance, ChainRecord, Failure};
use anyhow::bail;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

pub struct Worker {
    pub chain: ChainInstance,
    batch: Batch,
    /// When the first record of `batch` was read.
    opened: Option<Instant>,
    /// Records read before `batch` that a run left when isolating failing
    /// records took its time: run next, one at a time.
    leftover: Option<Leftover>,
    /// Records of `batch` that are dead-lettered, not transformed: header
    /// names that are not UTF-8, or a key or value not of its format.
    malformed: Vec<(u32, Rejected)>,
    /// Buffers for decoding a record's key and value.
    decoded: (Vec<u8>, Vec<u8>),
    /// Buffers for encoding outputs: which of key and value are encoded,
    /// and their bytes.
    encoded: Vec<Encoded>,
    /// The rebalance generation the partition was assigned in: records
    /// polled before it are not this worker's.
    pub since: u64,
    /// Batches whose state writes wait for their offsets to be final.
    pub sealed: Sealed,
}

/// Records a run left, with those among them to be dead-lettered
/// (indexes into `batch`).
struct Leftover {
    batch: Batch,
    malformed: Vec<(u32, Rejected)>,
}

/// Why a record read is dead-lettered without being transformed.
#[derive(Clone, Debug)]
enum Rejected {
    /// A header name is not UTF-8: the headers as they came.
    Headers(RawHeaders),
    /// The key or value is not of its format (the record is in the batch
    /// as it came).
    Format(FormatError),
}

/// What a run needs besides the worker.
pub struct Context<'a, P: Producer> {
    pub producer: &'a P,
    pub delivery: &'a mut dyn Delivery<P>,
    pub settings: &'a Settings,
    pub telemetry: &'a Telemetry,
    /// The state of plugins that keep state.
    pub keeper: &'a Keeper,
}

impl Worker {
    pub fn new(chain: ChainInstance, since: u64) -> Worker {
        Worker {
            chain,
            batch: Batch::default(),
            opened: None,
            leftover: None,
            malformed: Vec::new(),
            decoded: Default::default(),
            encoded: Vec::new(),
            since,
            sealed: Sealed::new(),
        }
    }

    /// Appends a record read for this worker's partition `tp` to the batch
    /// (opening it at `now`), its key and value decoded by `codec`. One
    /// whose header names are not UTF-8, or whose key or value is not of
    /// its format, goes in as it came, to be dead-lettered.
    pub fn take<P: Producer>(
        &mut self,
        tp: &TopicPartition,
        record: &Fetched<'_>,
        now: Instant,
        delivery: &mut dyn Delivery<P>,
        codec: &Codec,
    ) {
        let (key_buf, value_buf) = &mut self.decoded;
        let decoded = if codec.is_raw() {
            None
        } else {
            Some(codec.decode_record(record.key(), record.value(), key_buf, value_buf))
        };
        self.opened.get_or_insert(now);
        let opening = self.batch.is_empty();
        let batch = &mut self.batch;
        let (filled, failed) = match decoded {
            None => (record.fill(batch), None),
            Some(Err(e)) => (record.fill(batch), Some(e)),
            Some(Ok(d)) => {
                let (key, value) = (
                    record.key().map(|_| &key_buf[..]),
                    record.value().map(|_| &value_buf[..]),
                );
                let key = if d.key_raw { record.key() } else { key };
                let value = if d.value_raw { record.value() } else { value };
                let extra: Vec<(&str, &[u8])> =
                    d.headers.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
                (
                    record.fill_as(batch, key, value, Some((&extra, is_reserved_header))),
                    None,
                )
            }
        };
        match filled {
            Ok(raw) => {
                if opening {
                    delivery.reading(tp, record.offset());
                }
                let index = self.batch.len() as u32 - 1;
                if let Some(e) = failed {
                    self.malformed.push((index, Rejected::Format(e)));
                } else if let Some(raw) = raw {
                    self.malformed.push((index, Rejected::Headers(raw)));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "record {tp}@{} does not fit a batch", record.offset())
            }
        }
    }

    /// How many more records the batch takes before it is due.
    pub fn room(&self, settings: &Settings) -> usize {
        if self.batch.data_len() >= settings.batch_bytes {
            return 0;
        }
        settings.batch_records.saturating_sub(self.batch.len())
    }

    pub fn opened(&self) -> Option<Instant> {
        self.opened
    }

    /// Whether there is anything to run.
    pub fn is_idle(&self) -> bool {
        self.leftover.is_none() && self.batch.is_empty()
    }

    /// Whether the batch should run now.
    pub fn is_due(&self, settings: &Settings, now: Instant) -> bool {
        self.leftover.is_some()
            || self.batch.len() >= settings.batch_records
            || self.batch.data_len() >= settings.batch_bytes
            || self
                .opened
                .is_some_and(|t| now.saturating_duration_since(t) >= settings.linger)
    }

    /// Throws away what was read and not run: it is read again.
    pub fn reset(&mut self) {
        self.batch.clear();
        self.leftover = None;
        self.malformed.clear();
        self.opened = None;
    }

    /// Runs the batch (or what a run left) through the chain, produces
    /// the outputs, deals with failed records by policy and tells the
    /// delivery mode what was processed.
    pub fn process<P: Producer>(
        &mut self,
        tp: &TopicPartition,
        cx: &mut Context<'_, P>,
    ) -> anyhow::Result<()> {
        if cx.delivery.is_poisoned() {
            return Ok(());
        }
        // Records a cut left run before any read after them, one at a time.
        let isolate = self.leftover.is_some();
        let (batch, malformed) = match &self.leftover {
            Some(l) => (&l.batch, &l.malformed),
            None => (&self.batch, &self.malformed),
        };
        if batch.is_empty() {
            return Ok(());
        }
        let telemetry = cx.telemetry;
        let started = Instant::now();
        // Isolating failing records stops after about one deadline, so a
        // burst of records that each hit it still lets the loop go round,
        // produce and commit between them.
        let until = started + cx.settings.deadline;
        // With state, a record whose output Kafka would refuse fails in
        // the chain, so that its state writes go with it.
        let (producer, keeper) = (cx.producer, cx.keeper);
        let output_topic = cx.settings.output_topic.as_str();
        let admit_to = |topic: &str, bytes| {
            keeper.guard(topic)?;
            producer.admit(topic, bytes)
        };
        let codec = &*cx.settings.codec;
        let admit = |r: &ChainRecord<'_>| {
            let topic = r.topic.unwrap_or(output_topic);
            let mut buf = Default::default();
            let parts = match codec.is_raw() {
                true => OutParts {
                    key: r.key,
                    value: r.value,
                },
                false => match encode(codec, r, topic, &mut buf) {
                    Ok((k, v)) => OutParts {
                        key: if k { Some(&buf.0[..]) } else { r.key },
                        value: if v { Some(&buf.1[..]) } else { r.value },
                    },
                    Err(e) => {
                        return Some(Failure::Format {
                            reason: e.reason(),
                            message: e.to_string(),
                        });
                    }
                },
            };
            let refusal = admit_to(topic, record_bytes(r, &parts)).err()?;
            Some(Failure::Refused {
                reason: refusal.reason,
                message: failure::refusal_message(topic, &refusal),
            })
        };
        // Records dead-lettered as read are not run: the chain runs the
        // others, and its indexes are mapped back to the batch's.
        let skipped: Vec<u32> = malformed.iter().map(|(i, _)| *i).collect();
        let sieved = sieve(batch, &skipped)?;
        let (input, map) = match &sieved {
            Some((input, map)) => (input, Some(&map[..])),
            None => (batch, None),
        };
        let to_batch = |i: u32| {
            map.map_or(i, |m| {
                m.get(i as usize).copied().unwrap_or(batch.len() as u32)
            })
        };
        let mut out = self.chain.run_admitted(input, Some(until), isolate, &admit);
        for f in &mut out.failures {
            f.index = to_batch(f.index);
        }
        // A store that fails is no record's fault: nothing is produced or
        // dead-lettered, and the run stops so that the partition's records
        // are read again, its state restored from the changelog.
        if let Some((plugin, message)) = out.failures.iter().find_map(|f| match &f.failure {
            Failure::StateUnavailable(message) => Some((&f.plugin, message)),
            _ => None,
        }) {
            bail!(
                "plugin {plugin}'s state store failed on {tp}: {message}; stopping with nothing \
                 produced or dead-lettered from this batch: the partition is read again from its \
                 last commit and its state restored from the changelog (check the disk under \
                 --state-dir)"
            );
        }
        let done = to_batch(out.done) as usize;
        telemetry.emit(BatchRun {
            topic: &tp.topic,
            records: done,
            took: started.elapsed(),
        });
        for f in &out.failures {
            telemetry.emit(RecordFailed {
                plugin: &f.plugin,
                kind: f.failure.kind().as_str(),
                reason: f.failure.label(),
            });
        }
        let last_plugin = self.chain.plugins().last().map(|p| &**p);
        // Outputs per destination topic; a batch has one or a few.
        let mut per_topic: Vec<(&str, u64)> = Vec::new();
        let ack = Arc::new(cx.keeper.ack_for(&self.chain));
        let mut dead: Vec<DeadLetter> = out.failures.iter().map(DeadLetter::from).collect();
        for (index, why) in malformed.iter().filter(|(i, _)| (*i as usize) < done) {
            dead.push(match why {
                Rejected::Headers(_) => DeadLetter::malformed(*index),
                Rejected::Format(e) => DeadLetter::format(*index, e, None),
            });
        }
        let mut refused: BTreeSet<u32> = BTreeSet::new();
        let encoded = &mut self.encoded;
        let output_topic = cx.settings.output_topic.as_str();
        // The outputs of one input record, all admitted before any is
        // queued: a record Kafka refuses loses every output it had.
        let mut group: Vec<ChainRecord<'_>> = Vec::new();
        let mut records = out.records().peekable();
        while let Some(first) = records.next() {
            let origin = to_batch(first.origin);
            group.clear();
            group.push(first);
            while let Some(r) = records.next_if(|r| to_batch(r.origin) == origin) {
                group.push(r);
            }
            // Encoded for their topics before any is queued: an output
            // that does not fit its schema fails its record as a whole.
            if !codec.is_raw() {
                encoded.resize_with(group.len(), Default::default);
                let failed = group.iter().zip(encoded.iter_mut()).find_map(|(r, buf)| {
                    let topic = r.topic.unwrap_or(output_topic);
                    match encode(codec, r, topic, &mut buf.1) {
                        Ok(which) => {
                            buf.0 = which;
                            None
                        }
                        Err(e) => Some(e),
                    }
                });
                if let Some(e) = failed {
                    refused.insert(origin);
                    telemetry.emit(RecordFailed {
                        plugin: last_plugin.map_or("", |p| p.name.as_str()),
                        kind: "format",
                        reason: e.reason(),
                    });
                    dead.push(DeadLetter::format(origin, &e, last_plugin));
                    continue;
                }
            }
            let raw = codec.is_raw();
            let admitted = group.iter().enumerate().try_for_each(|(i, r)| {
                let topic = r.topic.unwrap_or(output_topic);
                let parts = out_parts(raw, encoded.get(i), r);
                admit_to(topic, record_bytes(r, &parts))
                    .map_err(|refusal| (topic.to_owned(), refusal))
            });
            let mut refusal = admitted.err();
            if refusal.is_none() {
                for (queued, r) in group.iter().enumerate() {
                    let topic = r.topic.unwrap_or(output_topic);
                    let parts = out_parts(raw, encoded.get(queued), r);
                    let reserved = !codec.is_raw();
                    let sent = cx.producer.send(
                        OutRecord {
                            topic,
                            key: parts.key,
                            value: parts.value,
                            headers: r
                                .headers
                                .iter()
                                .filter(|(n, _)| !(reserved && is_reserved_header(n.as_bytes())))
                                .map(|(n, v)| (n.as_bytes(), v)),
                            timestamp: r.timestamp,
                            partition: None,
                        },
                        &ack,
                    );
                    match sent {
                        Ok(()) => match per_topic.iter_mut().find(|(t, _)| *t == topic) {
                            Some((_, n)) => *n += 1,
                            None => per_topic.push((topic, 1)),
                        },
                        Err(SendError::Refused { topic, refusal: r }) => {
                            if cx.delivery.transactional() && queued > 0 {
                                // Outputs of this record are queued in the
                                // transaction: abort it; processed again,
                                // the record is refused before any is.
                                cx.delivery.poison(TransactionError::RecordRefused {
                                    topic,
                                    reason: r.reason,
                                });
                                return Ok(());
                            }
                            refusal = Some((topic, r));
                            break;
                        }
                        Err(SendError::Transaction(e)) => {
                            // Rewinding reads this batch again.
                            cx.delivery.poison(e);
                            return Ok(());
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            if let Some((topic, refusal)) = refusal {
                refused.insert(origin);
                telemetry.emit(RecordFailed {
                    plugin: last_plugin.map_or("", |p| p.name.as_str()),
                    kind: "produce",
                    reason: refusal.reason,
                });
                dead.push(DeadLetter::refused(origin, &topic, &refusal, last_plugin));
            }
        }
        drop(records);
        cx.telemetry.emit(OutputsProduced {
            per_topic: &per_topic,
        });
        dead.sort_by_key(|d| d.index);
        for d in &dead {
            let why = malformed
                .iter()
                .find(|(i, _)| *i == d.index)
                .map(|(_, w)| w);
            let raw = match why {
                Some(Rejected::Headers(h)) => Some(h),
                _ => None,
            };
            // A record decoded for the plugins is dead-lettered as it was read.
            let decoded = !matches!(why, Some(Rejected::Format(_)));
            if let Err(e) = failure::handle(cx, batch, d, raw, decoded, &ack)? {
                cx.delivery.poison(e);
                return Ok(());
            }
        }
        // The chain always runs at least one record of a batch.
        let (Some(first), Some(last)) =
            (batch.get(0), done.checked_sub(1).and_then(|i| batch.get(i)))
        else {
            anyhow::bail!("the chain ran none of a batch of {} records", batch.len());
        };
        let (first, last) = (first.offset(), last.offset());
        cx.keeper.ready(&mut self.chain)?;
        let sealed = cx.keeper.seal(
            tp,
            last + 1,
            &mut self.chain,
            &mut self.sealed,
            cx.producer,
            &ack,
            telemetry,
        );
        match sealed {
            Ok(()) => {}
            Err(SendError::Transaction(e)) => {
                cx.delivery.poison(e);
                return Ok(());
            }
            Err(e) => return Err(anyhow::Error::from(e).context("producing state changes")),
        }
        cx.delivery.produced(tp, first, last + 1, ack);
        let rest = if done < batch.len() {
            Some(Leftover {
                batch: remainder(batch, done)?,
                malformed: malformed
                    .iter()
                    .filter(|(i, _)| *i as usize >= done)
                    .map(|(i, h)| (*i - done as u32, h.clone()))
                    .collect(),
            })
        } else {
            None
        };
        match (isolate, rest) {
            // The rest runs on the next round, before anything read since.
            (false, Some(rest)) => {
                self.batch.clear();
                self.malformed.clear();
                self.leftover = Some(rest);
            }
            (true, rest) => self.leftover = rest,
            (false, None) => {
                self.batch.clear();
                self.malformed.clear();
                self.opened = None;
            }
        }
        Ok(())
    }
}

/// An output's key and value encoded by `codec` for `topic` into `out`;
/// which of them were.
fn encode(
    codec: &Codec,
    r: &ChainRecord<'_>,
    topic: &str,
    out: &mut (Vec<u8>, Vec<u8>),
) -> Result<(bool, bool), FormatError> {
    let header = |name: &str| {
        r.headers
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| v)
    };
    codec.encode_record(topic, r.key, r.value, &header, out)
}

/// Records `from..` of `batch`, as a batch of their own.
fn remainder(batch: &Batch, from: usize) -> anyhow::Result<Batch> {
    let mut rest = Batch::default();
    for record in batch.iter().skip(from) {
        rest.push(&record)?;
    }
    Ok(rest)
}

/// An output's key and value as produced (encoded, or as written).
struct OutParts<'a> {
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
}

/// An output's key and value as produced: encoded (`encoded`, unless the
/// pipeline's formats are all raw) or as the plugin wrote them.
fn out_parts<'a>(raw: bool, encoded: Option<&'a Encoded>, r: &ChainRecord<'a>) -> OutParts<'a> {
    match encoded {
        Some(((k, v), bytes)) if !raw => OutParts {
            key: if *k { Some(&bytes.0[..]) } else { r.key },
            value: if *v { Some(&bytes.1[..]) } else { r.value },
        },
        _ => OutParts {
            key: r.key,
            value: r.value,
        },
    }
}

/// Which of an output's key and value are encoded, and their bytes.
type Encoded = ((bool, bool), (Vec<u8>, Vec<u8>));

/// Without the records `skipped` (ascending), `batch` as a batch of its
/// own, with the index in `batch` of each of its records; `None` when
/// nothing is skipped.
fn sieve(batch: &Batch, skipped: &[u32]) -> anyhow::Result<Option<(Batch, Vec<u32>)>> {
    if skipped.is_empty() {
        return Ok(None);
    }
    let mut kept = Batch::default();
    let mut map = Vec::with_capacity(batch.len());
    for (i, record) in batch.iter().enumerate() {
        if skipped.binary_search(&(i as u32)).is_err() {
            kept.push(&record)?;
            map.push(i as u32);
        }
    }
    Ok(Some((kept, map)))
}

/// The bytes Kafka counts of a record: key, value and headers.
fn record_bytes(r: &ChainRecord<'_>, parts: &OutParts<'_>) -> usize {
    parts.key.map_or(0, <[u8]>::len)
        + parts.value.map_or(0, <[u8]>::len)
        + r.headers
            .iter()
            .map(|(n, v)| n.len() + v.map_or(0, <[u8]>::len))
            .sum::<usize>()
}
