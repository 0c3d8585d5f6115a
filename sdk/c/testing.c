/* The native back end, for unit tests: see wasmpipe_testing.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wasmpipe_testing.h"

static const char *const LEVELS[] = {"trace", "debug", "info", "warn", "error"};

void wasmpipe_emit_log(wasmpipe_level level, const char *message) {
    fprintf(stderr, "[%s] %s\n", LEVELS[level], message);
}

char *wasmpipe_test_init(const char *const *pairs) {
    /* The config lives until the next init, as in a plugin instance. */
    static wasmpipe_config *config;
    size_t n = 0;
    while (pairs[2 * n]) n++;
    wasmpipe_config_free(config);
    config = wasmpipe_config_new(n);
    for (size_t i = 0; i < n; i++) {
        const char *k = pairs[2 * i], *v = pairs[2 * i + 1];
        wasmpipe_config_set(config, i, k, strlen(k), v, strlen(v));
    }
    return wasmpipe_run_init(config);
}

static wasmpipe_bytes text(const char *s) {
    return (wasmpipe_bytes){(const uint8_t *)s, s ? strlen(s) : 0};
}

wasmpipe_record wasmpipe_test_record(const char *key, const char *value) {
    return (wasmpipe_record){
        .key = text(key),
        .value = text(value),
        .timestamp_type = WASMPIPE_TIMESTAMP_CREATE_TIME,
        .topic = {"test", 4},
    };
}

void wasmpipe_test_add_header(wasmpipe_record *record, const char *name, const char *value) {
    /* Every header array made here stays reachable until the test exits. */
    static wasmpipe_header **arrays;
    static size_t count;
    wasmpipe_header *headers = wasmpipe_alloc((record->header_count + 1) * sizeof *headers);
    if (record->header_count) {
        memcpy(headers, record->headers, record->header_count * sizeof *headers);
    }
    headers[record->header_count++] = (wasmpipe_header){{name, strlen(name)}, text(value)};
    record->headers = headers;
    arrays = wasmpipe_realloc(arrays, (count + 1) * sizeof *arrays);
    arrays[count++] = headers;
}

wasmpipe_test_result wasmpipe_test_run_with(wasmpipe_transform_fn transform,
                                            const wasmpipe_record *record) {
    static wasmpipe_outputs out;
    static char *last_error;
    free(last_error);
    last_error = wasmpipe_run_transform_with(transform, 0, record, &out);
    return (wasmpipe_test_result){last_error, out.count, (const wasmpipe_output *const *)out.items};
}

wasmpipe_test_result wasmpipe_test_run(const wasmpipe_record *record) {
    return wasmpipe_test_run_with(wasmpipe_transform, record);
}

static int failures;

void wasmpipe_test_expect(bool ok, const char *what, const char *file, int line) {
    if (!ok) {
        fprintf(stderr, "%s:%d: expected %s\n", file, line, what);
        failures++;
    }
}

void wasmpipe_test_expect_str(const char *actual, const char *expected, const char *what,
                              const char *file, int line) {
    if (actual == expected || (actual && expected && strcmp(actual, expected) == 0)) return;
    fprintf(stderr, "%s:%d: %s\n  got:      %s\n  expected: %s\n", file, line, what,
            actual ? actual : "(null)", expected ? expected : "(null)");
    failures++;
}

int wasmpipe_test_failures(void) { return failures; }

/* --- state: the native double, the host's rules in memory */

/* An entry: key, value (each malloc'd, at least one byte) and expiry. */
typedef struct {
    uint8_t *key, *value;
    size_t key_len, value_len;
    bool expires;
    int64_t expiry; /* in stream time: gone once stream time reaches it */
} stored;

/* What a write of the current record replaced, to put back if it fails. */
typedef struct {
    uint8_t *key;
    size_t key_len;
    bool had;  /* the key was set before the write */
    stored old; /* if so: what it held (key unused) */
} undo_step;

static struct {
    stored *entries; /* sorted by key, bytewise */
    size_t count, cap;
    bool has_time;
    int64_t time;
    undo_step *undo;
    size_t undo_count, undo_cap;
} memory;

static uint8_t *copy_bytes(const uint8_t *data, size_t len) {
    uint8_t *p = wasmpipe_alloc(len);
    if (len) memcpy(p, data, len);
    return p;
}

static int compare(const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len) {
    size_t n = a_len < b_len ? a_len : b_len;
    int c = n ? memcmp(a, b, n) : 0;
    if (c) return c;
    return (a_len > b_len) - (a_len < b_len);
}

/* The first entry not below `key`; *found if it is `key`. */
static size_t lower_bound(const uint8_t *key, size_t key_len, bool *found) {
    size_t lo = 0, hi = memory.count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (compare(memory.entries[mid].key, memory.entries[mid].key_len, key, key_len) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    *found = lo < memory.count &&
             compare(memory.entries[lo].key, memory.entries[lo].key_len, key, key_len) == 0;
    return lo;
}

static int64_t now(void) { return memory.has_time ? memory.time : INT64_MIN; }

static bool live(const stored *e) { return !e->expires || now() < e->expiry; }

/* Sets `key` to `value` (taken), in place or inserted in order. */
static void set_entry(const uint8_t *key, size_t key_len, stored value) {
    bool found;
    size_t i = lower_bound(key, key_len, &found);
    if (found) {
        free(memory.entries[i].value);
        value.key = memory.entries[i].key;
        value.key_len = memory.entries[i].key_len;
        memory.entries[i] = value;
        return;
    }
    if (memory.count == memory.cap) {
        memory.cap = memory.cap ? memory.cap * 2 : 16;
        memory.entries = wasmpipe_realloc(memory.entries, memory.cap * sizeof *memory.entries);
    }
    memmove(&memory.entries[i + 1], &memory.entries[i], (memory.count - i) * sizeof *memory.entries);
    value.key = copy_bytes(key, key_len);
    value.key_len = key_len;
    memory.entries[i] = value;
    memory.count++;
}

static void remove_entry(size_t i, bool keep_value) {
    free(memory.entries[i].key);
    if (!keep_value) free(memory.entries[i].value);
    memmove(&memory.entries[i], &memory.entries[i + 1],
            (memory.count - i - 1) * sizeof *memory.entries);
    memory.count--;
}

/* Writes `key` (`value` taken; NULL value: deletes), remembering what it
 * held so a failed record can put it back. */
static void write_entry(const uint8_t *key, size_t key_len, const stored *value) {
    if (memory.undo_count == memory.undo_cap) {
        memory.undo_cap = memory.undo_cap ? memory.undo_cap * 2 : 16;
        memory.undo = wasmpipe_realloc(memory.undo, memory.undo_cap * sizeof *memory.undo);
    }
    undo_step *step = &memory.undo[memory.undo_count++];
    *step = (undo_step){copy_bytes(key, key_len), key_len, false, {0}};
    bool found;
    size_t i = lower_bound(key, key_len, &found);
    if (found) {
        /* The old value moves into the undo log. */
        step->had = true;
        step->old = memory.entries[i];
        step->old.key = NULL;
        if (value) {
            memory.entries[i].value = value->value;
            memory.entries[i].value_len = value->value_len;
            memory.entries[i].expires = value->expires;
            memory.entries[i].expiry = value->expiry;
        } else {
            remove_entry(i, true);
        }
    } else if (value) {
        set_entry(key, key_len, *value);
    }
}

static void forget_undo(void) {
    for (size_t i = 0; i < memory.undo_count; i++) {
        free(memory.undo[i].key);
        if (memory.undo[i].had) free(memory.undo[i].old.value);
    }
    memory.undo_count = 0;
}

void wasmpipe_backend_state_begin(uint32_t index, int64_t timestamp) {
    (void)index;
    forget_undo();
    if (!memory.has_time || timestamp > memory.time) memory.time = timestamp;
    memory.has_time = true;
}

void wasmpipe_backend_state_end(bool failed) {
    if (failed) {
        for (size_t n = memory.undo_count; n-- > 0;) {
            undo_step *step = &memory.undo[n];
            if (step->had) {
                set_entry(step->key, step->key_len, step->old);
                step->had = false; /* its value is the entry's again */
            } else {
                bool found;
                size_t i = lower_bound(step->key, step->key_len, &found);
                if (found) remove_entry(i, false);
            }
        }
    }
    forget_undo();
}

char *wasmpipe_backend_state_get(const uint8_t *key, size_t key_len, wasmpipe_value *value) {
    bool found;
    size_t i = lower_bound(key, key_len, &found);
    if (found && live(&memory.entries[i])) {
        const stored *e = &memory.entries[i];
        /* Exactly the value's bytes, so AddressSanitizer catches a plugin
         * reading one as a C string (it is not NUL-terminated in a
         * component either). */
        *value = (wasmpipe_value){copy_bytes(e->value, e->value_len), e->value_len, true};
    }
    return NULL;
}

char *wasmpipe_backend_state_put(const uint8_t *key, size_t key_len, const uint8_t *value,
                                 size_t value_len, const uint64_t *ttl_ms) {
    stored v = {NULL, copy_bytes(value, value_len), 0, value_len, false, 0};
    if (ttl_ms) {
        int64_t base = now() > 0 ? now() : 0;
        v.expires = true;
        v.expiry = *ttl_ms > (uint64_t)(INT64_MAX - base) ? INT64_MAX : base + (int64_t)*ttl_ms;
    }
    write_entry(key, key_len, &v);
    return NULL;
}

char *wasmpipe_backend_state_delete(const uint8_t *key, size_t key_len) {
    write_entry(key, key_len, NULL);
    return NULL;
}

int64_t wasmpipe_backend_state_stream_time(void) { return now(); }

static bool before_end(const stored *e, const wasmpipe_bound *end) {
    if (end->kind == WASMPIPE_BOUND_UNBOUNDED) return true;
    int c = compare(e->key, e->key_len, end->key, end->len);
    return end->kind == WASMPIPE_BOUND_INCLUDED ? c <= 0 : c < 0;
}

char *wasmpipe_backend_state_scan(const wasmpipe_bound *start, const wasmpipe_bound *end,
                                  uint32_t limit, wasmpipe_page *page) {
    size_t i = 0;
    if (start->kind != WASMPIPE_BOUND_UNBOUNDED) {
        bool found;
        i = lower_bound(start->key, start->len, &found);
        if (found && start->kind == WASMPIPE_BOUND_EXCLUDED) i++;
    }
    size_t most = memory.count - i < limit ? memory.count - i : limit;
    *page = (wasmpipe_page){most ? wasmpipe_alloc(most * sizeof *page->entries) : NULL, 0};
    for (; i < memory.count && page->count < limit && before_end(&memory.entries[i], end); i++) {
        const stored *e = &memory.entries[i];
        if (!live(e)) continue;
        page->entries[page->count++] = (wasmpipe_page_entry){
            e->key_len ? copy_bytes(e->key, e->key_len) : NULL,
            e->value_len ? copy_bytes(e->value, e->value_len) : NULL,
            e->key_len,
            e->value_len,
        };
    }
    return NULL;
}

void wasmpipe_test_reset_state(void) {
    forget_undo();
    for (size_t i = 0; i < memory.count; i++) {
        free(memory.entries[i].key);
        free(memory.entries[i].value);
    }
    free(memory.entries);
    free(memory.undo);
    memset(&memory, 0, sizeof memory);
}

wasmpipe_test_state wasmpipe_test_state_entries(void) {
    static wasmpipe_test_entry *entries;
    static size_t count;
    for (size_t i = 0; i < count; i++) {
        free((void *)entries[i].key.data);
        free((void *)entries[i].value.data);
    }
    free(entries);
    entries = NULL;
    count = 0;
    for (size_t i = 0; i < memory.count; i++) {
        const stored *e = &memory.entries[i];
        if (!live(e)) continue;
        uint8_t *k = wasmpipe_alloc(e->key_len + 1), *v = wasmpipe_alloc(e->value_len + 1);
        memcpy(k, e->key, e->key_len);
        memcpy(v, e->value, e->value_len);
        k[e->key_len] = v[e->value_len] = '\0';
        entries = wasmpipe_realloc(entries, (count + 1) * sizeof *entries);
        entries[count++] = (wasmpipe_test_entry){{k, e->key_len}, {v, e->value_len}};
    }
    return (wasmpipe_test_state){count, entries};
}
