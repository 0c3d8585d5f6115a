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

/* Runs the plugin's transform on one record into `out` (emptied first); on
 * failure empties `out` and returns the reason (malloc'd). */
char *wasmpipe_run_transform(const wasmpipe_record *record, wasmpipe_outputs *out);

/* Frees every output, keeping `out` itself for reuse. */
void wasmpipe_outputs_clear(wasmpipe_outputs *out);

/* Allocation that never returns NULL: a plugin out of memory traps, and
 * the host dead-letters the record that caused it. */
void *wasmpipe_alloc(size_t size);
void *wasmpipe_realloc(void *p, size_t size);

/* Where wasmpipe_log lines go. */
void wasmpipe_emit_log(wasmpipe_level level, const char *message);

#endif
