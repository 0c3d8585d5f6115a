//! Queueing one record in librdkafka without allocating on our side.
//!
//! rdkafka's `BaseProducer::send` allocates the topic name as a C string
//! for every record, and librdkafka then looks the topic up by name under
//! the client's write lock. Here each topic's handle is made once and kept,
//! and the record goes in through `rd_kafka_produceva` with that handle
//! (`RD_KAFKA_VTYPE_RKT`), which only takes a reference on it.

use rdkafka::IntoOpaque;
use rdkafka::bindings as rd;
use rdkafka::error::RDKafkaErrorCode;
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::CString;
use std::ptr::NonNull;

/// How many topics' handles a producer keeps. A plugin may name any number
/// of topics; past this, records go by name, as rdkafka sends them.
const MAX_TOPICS: usize = 256;

/// librdkafka's `RD_KAFKA_PARTITION_UA`: the partitioner picks.
const PARTITION_UNASSIGNED: i32 = -1;

/// One producer's topic handles. Owned by the producer's single writer
/// (the pipeline's thread), so no lock is taken per record.
pub(super) struct Topics {
    handles: RefCell<HashMap<Box<str>, Topic>>,
    /// How many handles are kept.
    most: usize,
}

impl Default for Topics {
    fn default() -> Topics {
        Topics::keeping(MAX_TOPICS)
    }
}

impl Topics {
    /// Keeps at most `most` topics' handles.
    pub(super) fn keeping(most: usize) -> Topics {
        Topics {
            handles: RefCell::default(),
            most,
        }
    }

    /// How many handles are kept now.
    #[cfg(test)]
    pub(super) fn kept(&self) -> usize {
        self.handles.borrow().len()
    }
}

/// A topic handle with the application's reference on it.
struct Topic(NonNull<rd::rd_kafka_topic_t>);

// SAFETY: librdkafka's topic handles may be used and destroyed from any
// thread.
unsafe impl Send for Topic {}

impl Drop for Topic {
    fn drop(&mut self) {
        // SAFETY: the handle came from `rd_kafka_topic_new` and this is
        // its one release. `Topics` is dropped before the client.
        unsafe { rd::rd_kafka_topic_destroy(self.0.as_ptr()) }
    }
}

/// A record's headers, built in librdkafka's own list; owned here until
/// librdkafka takes them with the record.
pub(super) struct Headers(NonNull<rd::rd_kafka_headers_t>);

impl Headers {
    /// The headers of `names_values`, or none if it is empty (a record
    /// without headers costs no list).
    pub(super) fn collect<'h>(
        names_values: impl Iterator<Item = (&'h [u8], Option<&'h [u8]>)>,
    ) -> Option<Headers> {
        let mut headers: Option<Headers> = None;
        for (name, value) in names_values {
            let list = headers.get_or_insert_with(|| {
                // SAFETY: allocates an empty list (it grows as needed).
                let raw = unsafe { rd::rd_kafka_headers_new(4) };
                Headers(NonNull::new(raw).expect("librdkafka allocates or aborts"))
            });
            list.add(name, value);
        }
        headers
    }

    /// Adds a header whose name is bytes, as Kafka carries them (a dead
    /// letter keeps the names its record came with).
    fn add(&mut self, name: &[u8], value: Option<&[u8]>) {
        let (value_ptr, value_len) = match value {
            Some(v) => (v.as_ptr().cast(), v.len() as isize),
            None => (std::ptr::null(), 0),
        };
        // SAFETY: the list is live and writable; librdkafka copies the
        // name and value (lengths given, so no NUL is needed). It fails
        // only for read-only lists, which this is not.
        unsafe {
            rd::rd_kafka_header_add(
                self.0.as_ptr(),
                name.as_ptr().cast(),
                name.len() as isize,
                value_ptr,
                value_len,
            );
        }
    }
}

impl Drop for Headers {
    fn drop(&mut self) {
        // SAFETY: the list is ours (librdkafka did not take it).
        unsafe { rd::rd_kafka_headers_destroy(self.0.as_ptr()) }
    }
}

/// A record for [`produce`].
pub(super) struct Native<'a> {
    pub topic: &'a str,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    /// Milliseconds since the epoch; librdkafka stamps the time of
    /// queueing when absent.
    pub timestamp: Option<i64>,
    /// The partition; `None` lets the partitioner pick.
    pub partition: Option<i32>,
}

/// Why librdkafka did not queue a record. The headers and the delivery
/// opaque are handed back, so the record can be queued again.
pub(super) struct NotQueued<O> {
    pub code: RDKafkaErrorCode,
    pub headers: Option<Headers>,
    pub opaque: O,
}

/// Queues `record` with `headers` in the client `rk`, a copy of its key
/// and value taken, `opaque` handed to its delivery report. `topic` must be
/// a name Kafka allows (no NUL in it).
///
/// # Safety
/// `rk` must be a live producer whose delivery reports decode their opaque
/// as `O` (rdkafka's `ProducerContext::DeliveryOpaque`), and it must
/// outlive `topics`.
pub(super) unsafe fn produce<O: IntoOpaque>(
    rk: *mut rd::rd_kafka_t,
    topics: &Topics,
    record: &Native<'_>,
    headers: Option<Headers>,
    opaque: O,
) -> Result<(), NotQueued<O>> {
    use rd::rd_kafka_vtype_t::*;
    let mem = |bytes: Option<&[u8]>| rd::rd_kafka_vu_s__bindgen_ty_1 {
        mem: rd::rd_kafka_vu_s__bindgen_ty_1__bindgen_ty_1 {
            ptr: bytes.map_or(std::ptr::null_mut(), |b| b.as_ptr().cast_mut().cast()),
            size: bytes.map_or(0, <[u8]>::len),
        },
    };
    let vu = |vtype, u| rd::rd_kafka_vu_t { vtype, u };
    let mut topics_map = topics.handles.borrow_mut();
    // The topic's handle, made the first time; by name past `MAX_TOPICS`.
    let by_name;
    let topic = if let Some(t) = topics_map.get(record.topic) {
        vu(
            RD_KAFKA_VTYPE_RKT,
            rd::rd_kafka_vu_s__bindgen_ty_1 { rkt: t.0.as_ptr() },
        )
    } else {
        let Ok(name) = CString::new(record.topic) else {
            return Err(NotQueued {
                code: RDKafkaErrorCode::InvalidTopic,
                headers,
                opaque,
            });
        };
        by_name = name;
        if topics_map.len() < topics.most {
            // SAFETY: `rk` is live; a NULL configuration takes the
            // client's default topic configuration.
            let raw = unsafe { rd::rd_kafka_topic_new(rk, by_name.as_ptr(), std::ptr::null_mut()) };
            let Some(handle) = NonNull::new(raw) else {
                // SAFETY: reads this thread's last error.
                let code = unsafe { rd::rd_kafka_last_error() };
                return Err(NotQueued {
                    code: code.into(),
                    headers,
                    opaque,
                });
            };
            topics_map.insert(record.topic.into(), Topic(handle));
            vu(
                RD_KAFKA_VTYPE_RKT,
                rd::rd_kafka_vu_s__bindgen_ty_1 { rkt: raw },
            )
        } else {
            vu(
                RD_KAFKA_VTYPE_TOPIC,
                rd::rd_kafka_vu_s__bindgen_ty_1 {
                    cstr: by_name.as_ptr(),
                },
            )
        }
    };
    let opaque_ptr = opaque.into_ptr();
    let header_list = headers
        .as_ref()
        .map_or(std::ptr::null_mut(), |h| h.0.as_ptr());
    let args = [
        topic,
        vu(
            RD_KAFKA_VTYPE_PARTITION,
            rd::rd_kafka_vu_s__bindgen_ty_1 {
                i32_: record.partition.unwrap_or(PARTITION_UNASSIGNED),
            },
        ),
        vu(
            RD_KAFKA_VTYPE_MSGFLAGS,
            rd::rd_kafka_vu_s__bindgen_ty_1 {
                i: rd::RD_KAFKA_MSG_F_COPY,
            },
        ),
        vu(RD_KAFKA_VTYPE_VALUE, mem(record.value)),
        vu(RD_KAFKA_VTYPE_KEY, mem(record.key)),
        vu(
            RD_KAFKA_VTYPE_OPAQUE,
            rd::rd_kafka_vu_s__bindgen_ty_1 { ptr: opaque_ptr },
        ),
        vu(
            RD_KAFKA_VTYPE_TIMESTAMP,
            rd::rd_kafka_vu_s__bindgen_ty_1 {
                i64_: record.timestamp.unwrap_or(0),
            },
        ),
        vu(
            RD_KAFKA_VTYPE_HEADERS,
            rd::rd_kafka_vu_s__bindgen_ty_1 {
                headers: header_list,
            },
        ),
    ];
    // Without headers the last argument is left out: a NULL list would be
    // taken as the record's.
    let count = if headers.is_some() {
        args.len()
    } else {
        args.len() - 1
    };
    drop(topics_map);
    // SAFETY: `rk` is live, every pointer in `args` is valid for the call,
    // and librdkafka copies the key and value (F_COPY). The topic handle
    // lives in `topics`, which the client outlives.
    let error = unsafe { rd::rd_kafka_produceva(rk, args.as_ptr(), count) };
    if error.is_null() {
        // librdkafka owns the headers now.
        std::mem::forget(headers);
        return Ok(());
    }
    // SAFETY: `error` is the one returned above, read then released once.
    let code = unsafe {
        let code = rd::rd_kafka_error_code(error);
        rd::rd_kafka_error_destroy(error);
        code
    };
    Err(NotQueued {
        code: code.into(),
        headers,
        // SAFETY: librdkafka did not take the opaque: this is the pointer
        // `into_ptr` made above, turned back once.
        opaque: unsafe { O::from_ptr(opaque_ptr) },
    })
}
