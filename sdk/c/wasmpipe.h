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
