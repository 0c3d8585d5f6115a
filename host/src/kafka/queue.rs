//! Partition queues: each assigned partition's records are taken from its
//! own librdkafka queue in batches (`rd_kafka_consume_batch_queue`) and
//! copied once, from librdkafka's buffers into the partition's batch,
//! while the consumer's queue goes on serving rebalances, errors and
//! statistics. No allocation, clock read or lock of ours per record.
//!
//! A queue split from the consumer's stays split: librdkafka marks it as
//! forwarded by the application, and a later fetch start (after a seek, a
//! rewind or a new assignment) does not route it back.

use super::TopicPartition;
use super::source::SourceContext;
use crate::record::{Batch, LayoutError, RecordParts, TimestampType};
use rdkafka::bindings as rd;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::error::KafkaError;
use std::ffi::{CString, c_void};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// Messages taken from a queue per call into librdkafka.
const CHUNK: usize = 512;

/// Wakes the pipeline's loop when a queue it reads goes from empty to
/// non-empty: librdkafka calls [`nonempty`] on the thread that enqueued.
#[derive(Default)]
pub(super) struct Wake {
    woken: Mutex<bool>,
    cond: Condvar,
}

impl Wake {
    pub(super) fn notify(&self) {
        *self.woken.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.cond.notify_one();
    }

    /// Waits until notified (since the last wait) or `timeout` passes.
    pub(super) fn wait(&self, timeout: Duration) {
        let woken = self.woken.lock().unwrap_or_else(|e| e.into_inner());
        let (mut woken, _) = self
            .cond
            .wait_timeout_while(woken, timeout, |w| !*w)
            .unwrap_or_else(|e| e.into_inner());
        *woken = false;
    }
}

unsafe extern "C" fn nonempty(_rk: *mut rd::rd_kafka_t, opaque: *mut c_void) {
    // SAFETY: `opaque` is the `Wake` a live `PartitionQueue` registered and
    // holds; the callback is unregistered before that is dropped.
    let wake = unsafe { &*(opaque as *const Wake) };
    wake.notify();
}

/// One partition's queue, split from the consumer's.
pub(super) struct PartitionQueue {
    native: *mut rd::rd_kafka_queue_t,
    /// What the queue's callback points at: dropped after `drop` has
    /// unregistered it.
    _wake: Arc<Wake>,
    /// Taken messages, reused between reads.
    taken: Vec<*mut rd::rd_kafka_message_t>,
    /// The queue must not outlive the client it belongs to.
    _consumer: Arc<BaseConsumer<SourceContext>>,
}

// SAFETY: librdkafka's queue handles may be used from any thread; the
// buffer holds no message between calls.
unsafe impl Send for PartitionQueue {}

impl PartitionQueue {
    /// Splits `tp`'s records from the consumer's queue. `None` if the
    /// client knows no such partition.
    pub(super) fn split(
        consumer: &Arc<BaseConsumer<SourceContext>>,
        tp: &TopicPartition,
        wake: &Arc<Wake>,
    ) -> Option<PartitionQueue> {
        let topic = CString::new(tp.topic.as_str()).ok()?;
        let rk = consumer.client().native_ptr();
        // SAFETY: a live client; librdkafka returns a new handle to the
        // partition's fetch queue (or null), which we own.
        let native = unsafe { rd::rd_kafka_queue_get_partition(rk, topic.as_ptr(), tp.partition) };
        if native.is_null() {
            return None;
        }
        // SAFETY: `native` is ours. Forwarding to null keeps the records on
        // this queue; the wake registered outlives the registration (Drop).
        unsafe {
            rd::rd_kafka_queue_forward(native, std::ptr::null_mut());
            rd::rd_kafka_queue_cb_event_enable(
                native,
                Some(nonempty),
                Arc::as_ptr(wake) as *mut c_void,
            );
        }
        Some(PartitionQueue {
            native,
            _wake: wake.clone(),
            taken: Vec::with_capacity(CHUNK),
            _consumer: consumer.clone(),
        })
    }

    /// Takes up to `max` records already fetched, without waiting, and
    /// hands each to `each` in offset order. Returns how many were taken.
    /// A consumer error (a message carrying one) is returned after every
    /// record taken with it has been handed on.
    pub(super) fn read(
        &mut self,
        topic: &str,
        max: usize,
        mut each: impl FnMut(Fetched<'_>),
    ) -> Result<usize, KafkaError> {
        let mut count = 0;
        let mut error = None;
        while count < max {
            let want = (max - count).min(CHUNK);
            self.taken.clear();
            // SAFETY: the buffer has room for `want` pointers; librdkafka
            // writes that many at most and returns how many.
            let n = unsafe {
                rd::rd_kafka_consume_batch_queue(self.native, 0, self.taken.as_mut_ptr(), want)
            };
            if n <= 0 {
                break;
            }
            // SAFETY: librdkafka wrote `n` message pointers.
            unsafe { self.taken.set_len(n as usize) };
            for &message in &self.taken {
                // SAFETY: a message librdkafka handed us, destroyed below.
                let err = unsafe { (*message).err };
                if err == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                    each(Fetched {
                        native: message,
                        topic,
                        _message: std::marker::PhantomData,
                    });
                    count += 1;
                } else {
                    error.get_or_insert(KafkaError::MessageConsumption(err.into()));
                }
                // SAFETY: taken from the queue, ours to destroy, once.
                unsafe { rd::rd_kafka_message_destroy(message) };
            }
            self.taken.clear();
            if (n as usize) < want {
                break;
            }
        }
        match error {
            Some(e) => Err(e),
            None => Ok(count),
        }
    }
}

impl Drop for PartitionQueue {
    fn drop(&mut self) {
        // SAFETY: our handle; the callback goes before the wake it points at.
        unsafe {
            rd::rd_kafka_queue_cb_event_enable(self.native, None, std::ptr::null_mut());
            rd::rd_kafka_queue_destroy(self.native);
        }
    }
}

/// A consumed record, still in librdkafka's buffers.
pub struct Fetched<'m> {
    native: *const rd::rd_kafka_message_t,
    topic: &'m str,
    _message: std::marker::PhantomData<&'m rd::rd_kafka_message_t>,
}

impl<'m> Fetched<'m> {
    /// The record at `native`, which lives for `'m`, of `topic`.
    ///
    /// # Safety
    /// `native` is a consumed message without error, live for `'m`.
    pub(super) unsafe fn of(native: *const rd::rd_kafka_message_t, topic: &'m str) -> Self {
        Fetched {
            native,
            topic,
            _message: std::marker::PhantomData,
        }
    }

    fn message(&self) -> &'m rd::rd_kafka_message_t {
        // SAFETY: live for 'm (construction).
        unsafe { &*self.native }
    }

    pub fn offset(&self) -> i64 {
        self.message().offset
    }

    pub fn partition(&self) -> i32 {
        self.message().partition
    }

    pub fn topic(&self) -> &'m str {
        self.topic
    }

    /// The record's key, if it has one.
    pub fn key(&self) -> Option<&'m [u8]> {
        let m = self.message();
        // SAFETY: librdkafka's key is `key_len` bytes or null, owned by the message.
        (!m.key.is_null())
            .then(|| unsafe { std::slice::from_raw_parts(m.key.cast::<u8>(), m.key_len) })
    }

    /// The record's value, if it has one (a tombstone has none).
    pub fn value(&self) -> Option<&'m [u8]> {
        let m = self.message();
        // SAFETY: librdkafka's payload is `len` bytes or null, owned by the message.
        (!m.payload.is_null())
            .then(|| unsafe { std::slice::from_raw_parts(m.payload.cast::<u8>(), m.len) })
    }

    /// Appends the record to `batch`. A header name another client wrote
    /// that is not UTF-8 cannot be given to a plugin as it is: the record
    /// goes in with the name made readable, and its headers as they came
    /// are returned for the pipeline to dead-letter it with.
    pub fn fill(&self, batch: &mut Batch) -> Result<Option<RawHeaders>, LayoutError> {
        self.fill_as(batch, self.key(), self.value(), None)
    }

    /// [`Fetched::fill`] with the key and value given (decoded from the
    /// record's), and, if `extra` is given, those headers added in place
    /// of the record's own that `reserved` names.
    pub fn fill_as(
        &self,
        batch: &mut Batch,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        extra: Option<AddedHeaders<'_>>,
    ) -> Result<Option<RawHeaders>, LayoutError> {
        let m = self.message();
        let mut kind = rd::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
        // SAFETY: a live message.
        let timestamp = unsafe { rd::rd_kafka_message_timestamp(self.native, &mut kind) };
        let (timestamp, timestamp_type) = match kind {
            rd::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_CREATE_TIME => {
                (timestamp, TimestampType::CreateTime)
            }
            rd::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME => {
                (timestamp, TimestampType::LogAppendTime)
            }
            _ => (0, TimestampType::NotAvailable),
        };
        let parts = RecordParts {
            key,
            value,
            timestamp,
            timestamp_type,
            topic: self.topic,
            partition: m.partition,
            offset: m.offset,
        };
        let headers = NativeHeaders::of(self.native);
        let (added, reserved): AddedHeaders<'_> = extra.unwrap_or((&[], |_| false));
        let added = added.iter().map(|(n, v)| (*n, Some(*v)));
        if headers.names_are_utf8() {
            let all = headers
                .iter()
                .filter(|(name, _)| !reserved(name))
                .map(|(name, value)| (std::str::from_utf8(name).unwrap_or_default(), value))
                .chain(added);
            batch.push_parts(parts, all)?;
            return Ok(None);
        }
        let names: Vec<_> = headers
            .iter()
            .map(|(name, _)| String::from_utf8_lossy(name))
            .collect();
        let all = names
            .iter()
            .zip(headers.iter())
            .filter(|(_, (name, _))| !reserved(name))
            .map(|(n, (_, v))| (n.as_ref(), v))
            .chain(added);
        batch.push_parts(parts, all)?;
        Ok(Some(headers.to_owned()))
    }
}

/// Headers added to a record, and which of its own they stand for.
pub type AddedHeaders<'a> = (&'a [(&'a str, &'a [u8])], fn(&[u8]) -> bool);

/// A record's headers as they came from Kafka (names are bytes).
pub type RawHeaders = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// A consumed record's headers as librdkafka holds them: names are bytes.
/// (rdkafka's `Headers::get` panics on a name that is not UTF-8.)
pub(super) struct NativeHeaders<'m> {
    native: *const rd::rd_kafka_headers_t,
    count: usize,
    _message: std::marker::PhantomData<&'m rd::rd_kafka_message_t>,
}

impl<'m> NativeHeaders<'m> {
    pub(super) fn of(message: *const rd::rd_kafka_message_t) -> NativeHeaders<'m> {
        let mut native = std::ptr::null_mut();
        // SAFETY: the message is live for 'm; librdkafka writes the
        // message's headers object (owned by the message) or returns an
        // error.
        let err = unsafe { rd::rd_kafka_message_headers(message, &mut native) };
        let count =
            if err == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && !native.is_null() {
                // SAFETY: a headers object librdkafka just returned.
                unsafe { rd::rd_kafka_header_cnt(native) }
            } else {
                0
            };
        NativeHeaders {
            native,
            count,
            _message: std::marker::PhantomData,
        }
    }

    fn get(&self, index: usize) -> Option<(&'m [u8], Option<&'m [u8]>)> {
        let mut name = std::ptr::null();
        let mut value = std::ptr::null();
        let mut size = 0;
        // SAFETY: `native` belongs to the message, which outlives 'm;
        // librdkafka checks the index.
        let err = unsafe {
            rd::rd_kafka_header_get_all(self.native, index, &mut name, &mut value, &mut size)
        };
        if err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || name.is_null() {
            return None;
        }
        // SAFETY: librdkafka returns a NUL-terminated name and a value of
        // `size` bytes (or null), both owned by the message.
        unsafe {
            let name = std::ffi::CStr::from_ptr(name).to_bytes();
            let value = (!value.is_null()).then(|| std::slice::from_raw_parts(value.cast(), size));
            Some((name, value))
        }
    }

    fn iter(&self) -> impl Iterator<Item = (&'m [u8], Option<&'m [u8]>)> + '_ {
        (0..self.count).filter_map(|i| self.get(i))
    }

    fn names_are_utf8(&self) -> bool {
        self.iter()
            .all(|(name, _)| std::str::from_utf8(name).is_ok())
    }

    pub(super) fn to_owned(&self) -> RawHeaders {
        self.iter()
            .map(|(n, v)| (n.to_vec(), v.map(<[u8]>::to_vec)))
            .collect()
    }
}
