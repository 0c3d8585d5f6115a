/*
 * wasmpipe for C: write a transform as one function over a record.
 *
 * A plugin defines wasmpipe_transform (and, if it takes config,
 * wasmpipe_init). The SDK turns the batch the host sends into records, calls
 * the plugin once per record, and turns what it emitted back into the
 * batch's result. The same plugin source builds into a component
 * (sdk/c/build) and natively against wasmpipe_testing.h for unit tests.
 *
 *     #include "wasmpipe.h"
 *
 *     bool wasmpipe_transform(const wasmpipe_record *record,
 *                             wasmpipe_outputs *out, wasmpipe_error *error) {
 *         if (!record->value.data) return wasmpipe_forward(out, record);
 *         wasmpipe_output *o = wasmpipe_emit(out, record);
 *         wasmpipe_output_set_value(o, (const uint8_t *)"x", 1);
 *         return true;
 *     }
 *
 * Returning false dead-letters the record (with the message given to
 * wasmpipe_fail) and drops whatever it emitted; the stream goes on.
 */
#ifndef WASMPIPE_H
#define WASMPIPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes that may be absent: data == NULL is a null key, a tombstone value or
 * a null header value; an empty but present value has data != NULL, len 0. */
typedef struct {
    const uint8_t *data;
    size_t len;
} wasmpipe_bytes;

/* UTF-8 text, not NUL-terminated. */
typedef struct {
    const char *data;
    size_t len;
} wasmpipe_str;

typedef struct {
    wasmpipe_str name;
    wasmpipe_bytes value;
} wasmpipe_header;

typedef enum {
    WASMPIPE_TIMESTAMP_NOT_AVAILABLE,
    WASMPIPE_TIMESTAMP_CREATE_TIME,
    WASMPIPE_TIMESTAMP_LOG_APPEND_TIME,
} wasmpipe_timestamp_type;

/* A record as consumed, with its full Kafka metadata. Valid during the
 * wasmpipe_transform call that receives it. */
typedef struct {
    wasmpipe_bytes key;
    wasmpipe_bytes value;
    const wasmpipe_header *headers; /* in order; names may repeat */
    size_t header_count;
    int64_t timestamp; /* ms since the Unix epoch */
    wasmpipe_timestamp_type timestamp_type;
    wasmpipe_str topic;
    int32_t partition;
    int64_t offset;
} wasmpipe_record;

/* Why init refused its config or transform failed a record. */
typedef struct wasmpipe_error wasmpipe_error;
/* Sets the message (printf-style) and returns false, so a plugin can write
 * `return wasmpipe_fail(error, "field '%s' is not a string", name);`. */
bool wasmpipe_fail(wasmpipe_error *error, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

/* The plugin's config: KEY=VALUE pairs from the pipeline file. Its strings
 * are NUL-terminated and live as long as the plugin instance. */
typedef struct wasmpipe_config wasmpipe_config;
/* The value of `key`, or NULL if it is not set. */
const char *wasmpipe_config_get(const wasmpipe_config *config, const char *key);
/* The value of `key`, or `fallback` if it is not set. */
const char *wasmpipe_config_get_or(const wasmpipe_config *config, const char *key,
                                   const char *fallback);
/* Refuses keys other than those listed (a NULL-terminated array), so a
 * misspelt key is an error at load rather than a silently ignored setting. */
bool wasmpipe_config_only(const wasmpipe_config *config, const char *const *keys,
                          wasmpipe_error *error);

/* What transform produces for one record: zero or more outputs. */
typedef struct wasmpipe_outputs wasmpipe_outputs;
typedef struct wasmpipe_output wasmpipe_output;

/* Emits `record` unchanged (key, value, headers, timestamp) to the
 * pipeline's output topic. Returns true. */
bool wasmpipe_forward(wasmpipe_outputs *out, const wasmpipe_record *record);
/* Emits a copy of `record` to change with the setters below (NULL: a new
 * output with no key, value or headers). The setters copy their arguments. */
wasmpipe_output *wasmpipe_emit(wasmpipe_outputs *out, const wasmpipe_record *record);
void wasmpipe_output_set_key(wasmpipe_output *o, const uint8_t *data, size_t len);
void wasmpipe_output_set_value(wasmpipe_output *o, const uint8_t *data, size_t len);
/* A null key, a tombstone. */
void wasmpipe_output_clear_key(wasmpipe_output *o);
void wasmpipe_output_clear_value(wasmpipe_output *o);
/* Appends a header; value NULL is a null header value. */
void wasmpipe_output_add_header(wasmpipe_output *o, const char *name, const uint8_t *value,
                                size_t value_len);
void wasmpipe_output_clear_headers(wasmpipe_output *o);
void wasmpipe_output_set_timestamp(wasmpipe_output *o, int64_t ms);
/* Routes the output to another topic (it must be in the pipeline's allowed
 * topics, or the record is dead-lettered). */
void wasmpipe_output_set_topic(wasmpipe_output *o, const char *topic);

/* A structured log line, tagged by the host with the plugin's name. */
typedef enum {
    WASMPIPE_LOG_TRACE,
    WASMPIPE_LOG_DEBUG,
    WASMPIPE_LOG_INFO,
    WASMPIPE_LOG_WARN,
    WASMPIPE_LOG_ERROR,
} wasmpipe_level;
void wasmpipe_log(wasmpipe_level level, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * Keyed state: bytes under bytes, kept by the host per plugin and input
 * partition, durable in Kafka with the outputs (exactly-once when the
 * pipeline is), restored when a partition moves to another process. Keys
 * sort bytewise. Call these from wasmpipe_transform:
 *
 *     wasmpipe_value v;
 *     if (!wasmpipe_state_get(record->key.data, record->key.len, &v, error)) return false;
 *     uint64_t count = wasmpipe_decode_u64(v.data, v.len) + 1;
 *     wasmpipe_value_free(&v);
 *     uint8_t be[8];
 *     wasmpipe_encode_u64(count, be);
 *     if (!wasmpipe_state_put(record->key.data, record->key.len, be, 8, error)) return false;
 *
 * The calls return false when the host refuses them (a key or value over
 * its limit, too many writes held for one batch, a store that cannot be
 * read) and set the record's error to the host's reason ("state: too
 * large: ..."): returning false then dead-letters the record with it. A
 * record that fails, however it fails, leaves none of its writes behind.
 * Time to live is counted in stream time — the highest record timestamp
 * the partition has seen, up to the record being transformed — so a replay
 * reads the same state. Natively (wasmpipe_testing.h) the same calls work
 * on an in-memory double with the same rules.
 *
 * Keys and values are (pointer, length); a NULL pointer with length 0 is
 * the empty key. `error` may be NULL when the reason is not wanted.
 */

/* A value read from state, owned by the caller: free it with
 * wasmpipe_value_free. When found, data is non-NULL (even for an empty
 * value) and is not NUL-terminated. */
typedef struct {
    uint8_t *data; /* malloc'd; NULL when not found */
    size_t len;
    bool found;
} wasmpipe_value;
void wasmpipe_value_free(wasmpipe_value *value);

/* Reads `key` into `value`: found, or not (never set, deleted, expired). */
bool wasmpipe_state_get(const uint8_t *key, size_t key_len, wasmpipe_value *value,
                        wasmpipe_error *error);
/* Sets `key` to `value`. */
bool wasmpipe_state_put(const uint8_t *key, size_t key_len, const uint8_t *value,
                        size_t value_len, wasmpipe_error *error);
/* Sets `key` to `value` until `ttl_ms` of stream time has passed (counted
 * from the record being transformed, or from 0 if that is earlier). */
bool wasmpipe_state_put_ttl(const uint8_t *key, size_t key_len, const uint8_t *value,
                            size_t value_len, uint64_t ttl_ms, wasmpipe_error *error);
/* Removes `key` (set or not). */
bool wasmpipe_state_delete(const uint8_t *key, size_t key_len, wasmpipe_error *error);

/* The partition's stream time in ms since the epoch (the highest record
 * timestamp seen, up to the record being transformed) into `*ms`; false
 * before any record. */
bool wasmpipe_state_stream_time(int64_t *ms);

/* Live entries of a key range in key order, fetched from the host a page
 * at a time:
 *
 *     wasmpipe_scan *scan = wasmpipe_state_scan_prefix((const uint8_t *)"user:", 5);
 *     wasmpipe_bytes key, value;
 *     wasmpipe_scan_status s;
 *     while ((s = wasmpipe_scan_next(scan, &key, &value, error)) == WASMPIPE_SCAN_ENTRY) {
 *         ...
 *     }
 *     wasmpipe_scan_free(scan);
 *     if (s == WASMPIPE_SCAN_ERROR) return false;
 *
 * The bounds are copied. Writes made while a scan runs may or may not be
 * seen by it. */
typedef struct wasmpipe_scan wasmpipe_scan;
typedef enum {
    WASMPIPE_SCAN_ENTRY, /* *key and *value are set */
    WASMPIPE_SCAN_DONE,  /* no more entries */
    WASMPIPE_SCAN_ERROR, /* the host refused; the reason is in the error */
} wasmpipe_scan_status;
/* Keys from `start` (included) to `end` (excluded); a NULL start or end is
 * unbounded on that side, so (NULL, 0, NULL, 0) is every entry. */
wasmpipe_scan *wasmpipe_state_scan(const uint8_t *start, size_t start_len, const uint8_t *end,
                                   size_t end_len);
/* Keys that start with `prefix`. */
wasmpipe_scan *wasmpipe_state_scan_prefix(const uint8_t *prefix, size_t prefix_len);
/* The next entry. Its key and value (never NULL) stay valid until the next
 * call on this scan or its wasmpipe_scan_free. After DONE or ERROR, DONE. */
wasmpipe_scan_status wasmpipe_scan_next(wasmpipe_scan *scan, wasmpipe_bytes *key,
                                        wasmpipe_bytes *value, wasmpipe_error *error);
void wasmpipe_scan_free(wasmpipe_scan *scan);

/* A u64 as 8 big-endian bytes (the layout the other SDKs' examples use, so
 * they read each other's state), and back: 0 for anything not 8 bytes long. */
void wasmpipe_encode_u64(uint64_t n, uint8_t out[8]);
uint64_t wasmpipe_decode_u64(const uint8_t *data, size_t len);

/* Defined by the plugin. wasmpipe_init is optional: without one, any config
 * key is refused. Returning false refuses the config (init) or dead-letters
 * the record (transform); set the reason with wasmpipe_fail. */
bool wasmpipe_init(const wasmpipe_config *config, wasmpipe_error *error);
bool wasmpipe_transform(const wasmpipe_record *record, wasmpipe_outputs *out,
                        wasmpipe_error *error);

#ifdef __cplusplus
}
#endif

#endif
