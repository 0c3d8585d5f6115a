/*
 * What the SDK's two back ends share: the component glue (component.c) and
 * the native test harness (testing.c) drive a plugin through these.
 * Not for plugins.
 */
#ifndef WASMPIPE_INTERNAL_H
#define WASMPIPE_INTERNAL_H

#include "wasmpipe.h"

/* Owned bytes: present == false is absent. */
typedef struct {
    uint8_t *data;
    size_t len;
    bool present;
} wasmpipe_owned;

typedef struct {
    char *name;
    wasmpipe_owned value;
} wasmpipe_owned_header;

struct wasmpipe_output {
    wasmpipe_owned key, value;
    wasmpipe_owned_header *headers;
    size_t header_count, header_cap;
    bool has_timestamp;
    int64_t timestamp;
    char *topic; /* NULL: the pipeline's output topic */
};

struct wasmpipe_outputs {
    wasmpipe_output **items;
    size_t count, cap;
};

struct wasmpipe_config {
    char **keys, **values;
    size_t count;
};

struct wasmpipe_error {
    char *message; /* NULL until wasmpipe_fail */
};

/* A config of `count` pairs, copied (NUL-terminated) from the given texts. */
wasmpipe_config *wasmpipe_config_new(size_t count);
void wasmpipe_config_set(wasmpipe_config *config, size_t i, const char *key, size_t key_len,
                         const char *value, size_t value_len);
void wasmpipe_config_free(wasmpipe_config *config);

/* Runs the plugin's init; on refusal returns the reason (malloc'd). */
char *wasmpipe_run_init(const wasmpipe_config *config);

/* Runs the plugin's transform on record `index` of the batch into `out`
 * (emptied first), between the state back end's begin and end of that
 * record; on failure empties `out` and returns the reason (malloc'd). */
char *wasmpipe_run_transform(uint32_t index, const wasmpipe_record *record,
                             wasmpipe_outputs *out);
/* The same with another function in the plugin's place (the native tests'
 * throwaway transforms). */
typedef bool (*wasmpipe_transform_fn)(const wasmpipe_record *record, wasmpipe_outputs *out,
                                      wasmpipe_error *error);
char *wasmpipe_run_transform_with(wasmpipe_transform_fn transform, uint32_t index,
                                  const wasmpipe_record *record, wasmpipe_outputs *out);

/* Frees every output, keeping `out` itself for reuse. */
void wasmpipe_outputs_clear(wasmpipe_outputs *out);

/* Allocation that never returns NULL: a plugin out of memory traps, and
 * the host dead-letters the record that caused it. */
void *wasmpipe_alloc(size_t size);
void *wasmpipe_realloc(void *p, size_t size);

/* Where wasmpipe_log lines go. */
void wasmpipe_emit_log(wasmpipe_level level, const char *message);

/* --- state: what each back end provides (component.c: the host's state
 * interface; testing.c: the in-memory double). wasmpipe.c builds the public
 * calls on these. The calls that can be refused return the reason as the
 * record's error ("state: too large: ...", malloc'd), or NULL. */

/* Record `index` of the batch, with `timestamp`, is about to be transformed. */
void wasmpipe_backend_state_begin(uint32_t index, int64_t timestamp);
/* That record ended, failed or not. */
void wasmpipe_backend_state_end(bool failed);

/* On success, `value` is as wasmpipe_value documents. */
char *wasmpipe_backend_state_get(const uint8_t *key, size_t key_len, wasmpipe_value *value);
/* ttl_ms NULL: no expiry. */
char *wasmpipe_backend_state_put(const uint8_t *key, size_t key_len, const uint8_t *value,
                                 size_t value_len, const uint64_t *ttl_ms);
char *wasmpipe_backend_state_delete(const uint8_t *key, size_t key_len);
/* INT64_MIN before any record. */
int64_t wasmpipe_backend_state_stream_time(void);

typedef enum {
    WASMPIPE_BOUND_UNBOUNDED,
    WASMPIPE_BOUND_INCLUDED,
    WASMPIPE_BOUND_EXCLUDED,
} wasmpipe_bound_kind;

typedef struct {
    wasmpipe_bound_kind kind;
    uint8_t *key; /* malloc'd (NULL when empty or unbounded) */
    size_t len;
} wasmpipe_bound;

/* One entry of a scan page: key and value malloc'd, NULL when empty. */
typedef struct {
    uint8_t *key, *value;
    size_t key_len, value_len;
} wasmpipe_page_entry;

typedef struct {
    wasmpipe_page_entry *entries; /* malloc'd (or NULL when count is 0) */
    size_t count;
} wasmpipe_page;

/* Up to `limit` live entries between `start` and `end`, in key order. */
char *wasmpipe_backend_state_scan(const wasmpipe_bound *start, const wasmpipe_bound *end,
                                  uint32_t limit, wasmpipe_page *page);
/* Frees a page's entries and array. */
void wasmpipe_page_free(wasmpipe_page *page);

/* A host's refusal as the record's error: "state: <what>: <message>". */
char *wasmpipe_state_reason(const char *what, const uint8_t *message, size_t len);

#endif
