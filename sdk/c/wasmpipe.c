/*
 * The SDK's core: config, errors, outputs, logging and the state calls,
 * shared by the component (component.c) and the native test harness
 * (testing.c), each of which provides the state back end.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wasmpipe_internal.h"

void *wasmpipe_alloc(size_t size) {
    void *p = malloc(size ? size : 1);
    if (!p) abort();
    return p;
}

void *wasmpipe_realloc(void *p, size_t size) {
    p = realloc(p, size ? size : 1);
    if (!p) abort();
    return p;
}

static char *copy_text(const char *text, size_t len) {
    char *s = wasmpipe_alloc(len + 1);
    memcpy(s, text, len);
    s[len] = '\0';
    return s;
}

static char *vformat(const char *format, va_list args) {
    va_list again;
    va_copy(again, args);
    int len = vsnprintf(NULL, 0, format, args);
    if (len < 0) {
        va_end(again);
        return copy_text(format, strlen(format));
    }
    char *s = wasmpipe_alloc((size_t)len + 1);
    vsnprintf(s, (size_t)len + 1, format, again);
    va_end(again);
    return s;
}

/* --- config */

wasmpipe_config *wasmpipe_config_new(size_t count) {
    wasmpipe_config *c = wasmpipe_alloc(sizeof *c);
    c->count = count;
    c->keys = wasmpipe_alloc(count * sizeof *c->keys);
    c->values = wasmpipe_alloc(count * sizeof *c->values);
    return c;
}

void wasmpipe_config_set(wasmpipe_config *c, size_t i, const char *key, size_t key_len,
                         const char *value, size_t value_len) {
    c->keys[i] = copy_text(key, key_len);
    c->values[i] = copy_text(value, value_len);
}

void wasmpipe_config_free(wasmpipe_config *c) {
    if (!c) return;
    for (size_t i = 0; i < c->count; i++) {
        free(c->keys[i]);
        free(c->values[i]);
    }
    free(c->keys);
    free(c->values);
    free(c);
}

const char *wasmpipe_config_get(const wasmpipe_config *c, const char *key) {
    return wasmpipe_config_get_or(c, key, NULL);
}

const char *wasmpipe_config_get_or(const wasmpipe_config *c, const char *key,
                                   const char *fallback) {
    /* The last of repeated keys wins, as in the other SDKs. */
    for (size_t i = c->count; i-- > 0;) {
        if (strcmp(c->keys[i], key) == 0) return c->values[i];
    }
    return fallback;
}

static char *known_list(const char *const *keys) {
    size_t len = 1;
    for (const char *const *k = keys; *k; k++) len += strlen(*k) + 2;
    char *s = wasmpipe_alloc(len);
    s[0] = '\0';
    for (const char *const *k = keys; *k; k++) {
        if (k != keys) strcat(s, ", ");
        strcat(s, *k);
    }
    return s;
}

bool wasmpipe_config_only(const wasmpipe_config *c, const char *const *keys,
                          wasmpipe_error *error) {
    for (size_t i = 0; i < c->count; i++) {
        bool known = false;
        for (const char *const *k = keys; *k && !known; k++) known = strcmp(*k, c->keys[i]) == 0;
        if (!known && !keys[0]) {
            return wasmpipe_fail(error, "unknown config key '%s': this plugin takes no config",
                                 c->keys[i]);
        }
        if (!known) {
            char *list = known_list(keys);
            wasmpipe_fail(error, "unknown config key '%s' (known: %s)", c->keys[i], list);
            free(list);
            return false;
        }
    }
    return true;
}

/* A plugin without wasmpipe_init takes no config. */
__attribute__((weak)) bool wasmpipe_init(const wasmpipe_config *config, wasmpipe_error *error) {
    static const char *const none[] = {NULL};
    return wasmpipe_config_only(config, none, error);
}

/* --- errors */

bool wasmpipe_fail(wasmpipe_error *error, const char *format, ...) {
    va_list args;
    va_start(args, format);
    free(error->message);
    error->message = vformat(format, args);
    va_end(args);
    return false;
}

static char *reason(wasmpipe_error *error, const char *what) {
    if (error->message) return error->message;
    return copy_text(what, strlen(what));
}

char *wasmpipe_run_init(const wasmpipe_config *config) {
    wasmpipe_error error = {NULL};
    if (wasmpipe_init(config, &error)) {
        free(error.message);
        return NULL;
    }
    return reason(&error, "init refused the config (the plugin gave no reason)");
}

char *wasmpipe_run_transform_with(wasmpipe_transform_fn transform, uint32_t index,
                                  const wasmpipe_record *record, wasmpipe_outputs *out) {
    wasmpipe_error error = {NULL};
    wasmpipe_outputs_clear(out);
    wasmpipe_backend_state_begin(index, record->timestamp);
    bool ok = transform(record, out, &error);
    wasmpipe_backend_state_end(!ok);
    if (ok) {
        free(error.message);
        return NULL;
    }
    wasmpipe_outputs_clear(out);
    return reason(&error, "transform failed (the plugin gave no reason)");
}

char *wasmpipe_run_transform(uint32_t index, const wasmpipe_record *record,
                             wasmpipe_outputs *out) {
    return wasmpipe_run_transform_with(wasmpipe_transform, index, record, out);
}

/* --- outputs */

static void set_owned(wasmpipe_owned *b, const uint8_t *data, size_t len) {
    free(b->data);
    b->data = wasmpipe_alloc(len + 1);
    if (len) memcpy(b->data, data, len);
    b->data[len] = '\0'; /* so tests can read text values as C strings */
    b->len = len;
    b->present = true;
}

static void clear_owned(wasmpipe_owned *b) {
    free(b->data);
    *b = (wasmpipe_owned){NULL, 0, false};
}

static void set_bytes(wasmpipe_owned *b, wasmpipe_bytes from) {
    if (from.data) {
        set_owned(b, from.data, from.len);
    } else {
        clear_owned(b);
    }
}

wasmpipe_output *wasmpipe_emit(wasmpipe_outputs *out, const wasmpipe_record *record) {
    wasmpipe_output *o = wasmpipe_alloc(sizeof *o);
    *o = (wasmpipe_output){0};
    if (record) {
        set_bytes(&o->key, record->key);
        set_bytes(&o->value, record->value);
        for (size_t i = 0; i < record->header_count; i++) {
            const wasmpipe_header *h = &record->headers[i];
            char *name = copy_text(h->name.data, h->name.len);
            wasmpipe_output_add_header(o, name, h->value.data, h->value.len);
            free(name);
        }
    }
    if (out->count == out->cap) {
        out->cap = out->cap ? out->cap * 2 : 4;
        out->items = wasmpipe_realloc(out->items, out->cap * sizeof *out->items);
    }
    out->items[out->count++] = o;
    return o;
}

bool wasmpipe_forward(wasmpipe_outputs *out, const wasmpipe_record *record) {
    wasmpipe_emit(out, record);
    return true;
}

void wasmpipe_output_set_key(wasmpipe_output *o, const uint8_t *data, size_t len) {
    set_owned(&o->key, data, len);
}

void wasmpipe_output_set_value(wasmpipe_output *o, const uint8_t *data, size_t len) {
    set_owned(&o->value, data, len);
}

void wasmpipe_output_clear_key(wasmpipe_output *o) { clear_owned(&o->key); }

void wasmpipe_output_clear_value(wasmpipe_output *o) { clear_owned(&o->value); }

void wasmpipe_output_add_header(wasmpipe_output *o, const char *name, const uint8_t *value,
                                size_t value_len) {
    if (o->header_count == o->header_cap) {
        o->header_cap = o->header_cap ? o->header_cap * 2 : 4;
        o->headers = wasmpipe_realloc(o->headers, o->header_cap * sizeof *o->headers);
    }
    wasmpipe_owned_header *h = &o->headers[o->header_count++];
    h->name = copy_text(name, strlen(name));
    h->value = (wasmpipe_owned){NULL, 0, false};
    if (value) set_owned(&h->value, value, value_len);
}

void wasmpipe_output_clear_headers(wasmpipe_output *o) {
    for (size_t i = 0; i < o->header_count; i++) {
        free(o->headers[i].name);
        free(o->headers[i].value.data);
    }
    o->header_count = 0;
}

void wasmpipe_output_set_timestamp(wasmpipe_output *o, int64_t ms) {
    o->has_timestamp = true;
    o->timestamp = ms;
}

void wasmpipe_output_set_topic(wasmpipe_output *o, const char *topic) {
    free(o->topic);
    o->topic = copy_text(topic, strlen(topic));
}

void wasmpipe_outputs_clear(wasmpipe_outputs *out) {
    for (size_t i = 0; i < out->count; i++) {
        wasmpipe_output *o = out->items[i];
        free(o->key.data);
        free(o->value.data);
        wasmpipe_output_clear_headers(o);
        free(o->headers);
        free(o->topic);
        free(o);
    }
    out->count = 0;
}

/* --- logging */

void wasmpipe_log(wasmpipe_level level, const char *format, ...) {
    va_list args;
    va_start(args, format);
    char *message = vformat(format, args);
    va_end(args);
    wasmpipe_emit_log(level, message);
    free(message);
}

/* --- state: the public calls over the back end (component.c or testing.c) */

/* Entries fetched per host call while a scan iterates. */
#define SCAN_PAGE 256

/* Hands a back end's refusal to the record's error; false if there was one. */
static bool accept(char *refusal, wasmpipe_error *error) {
    if (!refusal) return true;
    if (error) {
        free(error->message);
        error->message = refusal;
    } else {
        free(refusal);
    }
    return false;
}

char *wasmpipe_state_reason(const char *what, const uint8_t *message, size_t len) {
    static const char prefix[] = "state: ";
    size_t what_len = strlen(what);
    char *s = wasmpipe_alloc(sizeof prefix - 1 + what_len + 2 + len + 1);
    char *p = s;
    memcpy(p, prefix, sizeof prefix - 1);
    p += sizeof prefix - 1;
    memcpy(p, what, what_len);
    p += what_len;
    memcpy(p, ": ", 2);
    p += 2;
    if (len) memcpy(p, message, len);
    p[len] = '\0';
    return s;
}

void wasmpipe_value_free(wasmpipe_value *value) {
    free(value->data);
    *value = (wasmpipe_value){NULL, 0, false};
}

bool wasmpipe_state_get(const uint8_t *key, size_t key_len, wasmpipe_value *value,
                        wasmpipe_error *error) {
    *value = (wasmpipe_value){NULL, 0, false};
    return accept(wasmpipe_backend_state_get(key, key_len, value), error);
}

bool wasmpipe_state_put(const uint8_t *key, size_t key_len, const uint8_t *value,
                        size_t value_len, wasmpipe_error *error) {
    return accept(wasmpipe_backend_state_put(key, key_len, value, value_len, NULL), error);
}

bool wasmpipe_state_put_ttl(const uint8_t *key, size_t key_len, const uint8_t *value,
                            size_t value_len, uint64_t ttl_ms, wasmpipe_error *error) {
    return accept(wasmpipe_backend_state_put(key, key_len, value, value_len, &ttl_ms), error);
}

bool wasmpipe_state_delete(const uint8_t *key, size_t key_len, wasmpipe_error *error) {
    return accept(wasmpipe_backend_state_delete(key, key_len), error);
}

bool wasmpipe_state_stream_time(int64_t *ms) {
    int64_t t = wasmpipe_backend_state_stream_time();
    if (t == INT64_MIN) return false;
    *ms = t;
    return true;
}

void wasmpipe_page_free(wasmpipe_page *page) {
    for (size_t i = 0; i < page->count; i++) {
        free(page->entries[i].key);
        free(page->entries[i].value);
    }
    free(page->entries);
    *page = (wasmpipe_page){NULL, 0};
}

struct wasmpipe_scan {
    wasmpipe_bound next; /* where the next page starts */
    wasmpipe_bound end;
    bool more;           /* another page may follow the current one */
    wasmpipe_page page;
    size_t at;           /* the page's next entry */
};

static wasmpipe_bound bound(wasmpipe_bound_kind kind, const uint8_t *key, size_t len) {
    wasmpipe_bound b = {kind, NULL, len};
    if (len) {
        b.key = wasmpipe_alloc(len);
        memcpy(b.key, key, len);
    }
    return b;
}

wasmpipe_scan *wasmpipe_state_scan(const uint8_t *start, size_t start_len, const uint8_t *end,
                                   size_t end_len) {
    wasmpipe_scan *scan = wasmpipe_alloc(sizeof *scan);
    *scan = (wasmpipe_scan){0};
    scan->next = start ? bound(WASMPIPE_BOUND_INCLUDED, start, start_len)
                       : bound(WASMPIPE_BOUND_UNBOUNDED, NULL, 0);
    scan->end = end ? bound(WASMPIPE_BOUND_EXCLUDED, end, end_len)
                    : bound(WASMPIPE_BOUND_UNBOUNDED, NULL, 0);
    scan->more = true;
    return scan;
}

wasmpipe_scan *wasmpipe_state_scan_prefix(const uint8_t *prefix, size_t prefix_len) {
    /* The first key past the prefix: its last byte below 0xff raised by
     * one, what follows it dropped. A prefix of only 0xff bytes (or none)
     * has none: the scan runs to the last key. */
    size_t n = prefix_len;
    while (n > 0 && prefix[n - 1] == 0xff) n--;
    wasmpipe_scan *scan = wasmpipe_state_scan(prefix ? prefix : (const uint8_t *)"", prefix_len,
                                              NULL, 0);
    if (n > 0) {
        scan->end = bound(WASMPIPE_BOUND_EXCLUDED, prefix, n);
        scan->end.key[n - 1]++;
    }
    return scan;
}

static const uint8_t *nonnull(const uint8_t *p) { return p ? p : (const uint8_t *)""; }

wasmpipe_scan_status wasmpipe_scan_next(wasmpipe_scan *scan, wasmpipe_bytes *key,
                                        wasmpipe_bytes *value, wasmpipe_error *error) {
    if (scan->at == scan->page.count) {
        if (!scan->more) return WASMPIPE_SCAN_DONE;
        wasmpipe_page_free(&scan->page);
        scan->at = 0;
        char *refusal = wasmpipe_backend_state_scan(&scan->next, &scan->end, SCAN_PAGE, &scan->page);
        if (refusal) {
            scan->more = false;
            accept(refusal, error);
            return WASMPIPE_SCAN_ERROR;
        }
        scan->more = scan->page.count == SCAN_PAGE;
        if (scan->more) {
            /* The next page goes on from this one's last key, excluded. */
            const wasmpipe_page_entry *last = &scan->page.entries[scan->page.count - 1];
            free(scan->next.key);
            scan->next = bound(WASMPIPE_BOUND_EXCLUDED, last->key, last->key_len);
        }
        if (scan->page.count == 0) return WASMPIPE_SCAN_DONE;
    }
    const wasmpipe_page_entry *e = &scan->page.entries[scan->at++];
    *key = (wasmpipe_bytes){nonnull(e->key), e->key_len};
    *value = (wasmpipe_bytes){nonnull(e->value), e->value_len};
    return WASMPIPE_SCAN_ENTRY;
}

void wasmpipe_scan_free(wasmpipe_scan *scan) {
    if (!scan) return;
    wasmpipe_page_free(&scan->page);
    free(scan->next.key);
    free(scan->end.key);
    free(scan);
}

void wasmpipe_encode_u64(uint64_t n, uint8_t out[8]) {
    for (int i = 7; i >= 0; i--) {
        out[i] = (uint8_t)(n & 0xff);
        n >>= 8;
    }
}

uint64_t wasmpipe_decode_u64(const uint8_t *data, size_t len) {
    if (len != 8 || !data) return 0;
    uint64_t n = 0;
    for (int i = 0; i < 8; i++) n = (n << 8) | data[i];
    return n;
}
