/*
 * The component back end: wasmpipe's typed-transform export over the
 * plugin's wasmpipe_init and wasmpipe_transform. Built against the bindings
 * `wit-bindgen c --world typed-plugin` generates from wit/ (sdk/c/build).
 *
 * Ownership follows the canonical ABI as wit-bindgen's C bindings apply it:
 * the arguments are the plugin's to free; what it returns is freed by the
 * generated post-return functions, so outputs' malloc'd bytes are moved into
 * the result rather than copied. The state calls' results are the
 * plugin's: their bytes are moved into what the SDK hands on (a list of
 * length 0 has no allocation behind it, as cabi_realloc makes none).
 */
#include <stdlib.h>
#include <string.h>

#include "typed_plugin.h"
#include "wasmpipe_internal.h"

typedef exports_wasmpipe_transform_typed_transform_record_t wit_record;
typedef exports_wasmpipe_transform_typed_transform_output_record_t wit_output;
typedef exports_wasmpipe_transform_typed_transform_result_list_output_record_string_t wit_result;

void wasmpipe_emit_log(wasmpipe_level level, const char *message) {
    typed_plugin_string_t text = {(uint8_t *)message, strlen(message)};
    typed_plugin_list_tuple2_string_string_t fields = {NULL, 0};
    wasmpipe_transform_host_log((wasmpipe_transform_host_level_t)level, &text, &fields);
}

/* A malloc'd string handed to the host: post-return frees it (if not empty). */
static typed_plugin_string_t give_text(char *s) {
    size_t len = s ? strlen(s) : 0;
    if (len == 0) {
        free(s);
        return (typed_plugin_string_t){NULL, 0};
    }
    return (typed_plugin_string_t){(uint8_t *)s, len};
}

static typed_plugin_option_list_u8_t give_bytes(wasmpipe_owned *b) {
    typed_plugin_option_list_u8_t out = {b->present, {b->data, b->len}};
    if (b->len == 0) {
        free(b->data);
        out.val.ptr = NULL;
    }
    *b = (wasmpipe_owned){NULL, 0, false};
    return out;
}

static wasmpipe_bytes view(const typed_plugin_option_list_u8_t *b) {
    if (!b->is_some) return (wasmpipe_bytes){NULL, 0};
    return (wasmpipe_bytes){b->val.len ? b->val.ptr : (const uint8_t *)"", b->val.len};
}

bool exports_wasmpipe_transform_typed_transform_init(typed_plugin_list_tuple2_string_string_t *pairs,
                                                     typed_plugin_string_t *err) {
    /* The config lives as long as the instance: plugins may keep its strings. */
    wasmpipe_config *config = wasmpipe_config_new(pairs->len);
    for (size_t i = 0; i < pairs->len; i++) {
        typed_plugin_tuple2_string_string_t *p = &pairs->ptr[i];
        wasmpipe_config_set(config, i, (const char *)p->f0.ptr, p->f0.len,
                            (const char *)p->f1.ptr, p->f1.len);
    }
    typed_plugin_list_tuple2_string_string_free(pairs);
    char *reason = wasmpipe_run_init(config);
    if (!reason) return true;
    *err = give_text(reason);
    return false;
}

/* Moves one output's bytes into the record the host receives. */
static wit_output give_output(wasmpipe_output *o) {
    wit_output w = {0};
    w.key = give_bytes(&o->key);
    w.value = give_bytes(&o->value);
    w.headers.len = o->header_count;
    w.headers.ptr = o->header_count ? wasmpipe_alloc(o->header_count * sizeof *w.headers.ptr) : NULL;
    for (size_t i = 0; i < o->header_count; i++) {
        w.headers.ptr[i].name = give_text(o->headers[i].name);
        w.headers.ptr[i].value = give_bytes(&o->headers[i].value);
        o->headers[i].name = NULL;
    }
    w.timestamp = (typed_plugin_option_s64_t){o->has_timestamp, o->timestamp};
    if (o->topic) {
        w.topic.is_some = true;
        w.topic.val = give_text(o->topic);
        o->topic = NULL;
    }
    return w;
}

void exports_wasmpipe_transform_typed_transform_transform(
    exports_wasmpipe_transform_typed_transform_list_record_t *batch,
    exports_wasmpipe_transform_typed_transform_list_result_list_output_record_string_t *ret) {
    static wasmpipe_outputs out;
    static wasmpipe_header *headers;
    static size_t header_cap;

    ret->len = batch->len;
    ret->ptr = batch->len ? wasmpipe_alloc(batch->len * sizeof *ret->ptr) : NULL;
    for (size_t i = 0; i < batch->len; i++) {
        const wit_record *r = &batch->ptr[i];
        if (r->headers.len > header_cap) {
            header_cap = r->headers.len;
            headers = wasmpipe_realloc(headers, header_cap * sizeof *headers);
        }
        for (size_t h = 0; h < r->headers.len; h++) {
            const wasmpipe_transform_types_header_t *from = &r->headers.ptr[h];
            headers[h] = (wasmpipe_header){{(const char *)from->name.ptr, from->name.len},
                                           view(&from->value)};
        }
        wasmpipe_record record = {
            .key = view(&r->key),
            .value = view(&r->value),
            .headers = headers,
            .header_count = r->headers.len,
            .timestamp = r->timestamp,
            .timestamp_type = (wasmpipe_timestamp_type)r->timestamp_type,
            .topic = {(const char *)r->topic.ptr, r->topic.len},
            .partition = r->partition,
            .offset = r->offset,
        };
        wit_result *result = &ret->ptr[i];
        char *reason = wasmpipe_run_transform((uint32_t)i, &record, &out);
        if (reason) {
            result->is_err = true;
            result->val.err = give_text(reason);
            continue;
        }
        result->is_err = false;
        result->val.ok.len = out.count;
        result->val.ok.ptr = out.count ? wasmpipe_alloc(out.count * sizeof(wit_output)) : NULL;
        for (size_t o = 0; o < out.count; o++) result->val.ok.ptr[o] = give_output(out.items[o]);
        wasmpipe_outputs_clear(&out); /* frees what was not moved */
    }
    exports_wasmpipe_transform_typed_transform_list_record_free(batch);
}

/* --- state, over the host's state interface */

typedef wasmpipe_transform_state_state_error_t wit_state_error;

/* The record being transformed, until the host has been told (at-record is
 * called lazily, before a record's first state call, so a plugin that
 * never calls state costs the host nothing). */
static bool untold;
static uint32_t untold_index;

static void tell(void) {
    if (untold) {
        untold = false;
        wasmpipe_transform_state_at_record(untold_index);
    }
}

void wasmpipe_backend_state_begin(uint32_t index, int64_t timestamp) {
    (void)timestamp; /* the host knows it */
    untold = true;
    untold_index = index;
}

/* The host drops a failed record's writes itself. */
void wasmpipe_backend_state_end(bool failed) {
    (void)failed;
    untold = false;
}

/* The host's refusal as the record's error (freeing what it returned). */
static char *refusal(wit_state_error *e) {
    const char *what;
    typed_plugin_string_t *m;
    switch (e->tag) {
    case WASMPIPE_TRANSFORM_STATE_STATE_ERROR_TOO_LARGE:
        what = "too large";
        m = &e->val.too_large;
        break;
    case WASMPIPE_TRANSFORM_STATE_STATE_ERROR_FULL:
        what = "full";
        m = &e->val.full;
        break;
    default:
        what = "unavailable";
        m = &e->val.unavailable;
        break;
    }
    char *reason = wasmpipe_state_reason(what, m->ptr, m->len);
    wasmpipe_transform_state_state_error_free(e);
    return reason;
}

/* The plugin's bytes as a list argument (only read by the import). */
static typed_plugin_list_u8_t lend(const uint8_t *data, size_t len) {
    return (typed_plugin_list_u8_t){(uint8_t *)(len ? data : NULL), len};
}

/* A returned list's bytes, moved: NULL when empty. */
static uint8_t *take(typed_plugin_list_u8_t *list) {
    return list->len ? list->ptr : NULL;
}

char *wasmpipe_backend_state_get(const uint8_t *key, size_t key_len, wasmpipe_value *value) {
    tell();
    typed_plugin_list_u8_t k = lend(key, key_len);
    typed_plugin_option_list_u8_t got;
    wit_state_error err;
    if (!wasmpipe_transform_state_get(&k, &got, &err)) return refusal(&err);
    if (got.is_some) {
        value->found = true;
        value->len = got.val.len;
        value->data = got.val.len ? got.val.ptr : wasmpipe_alloc(1);
    }
    return NULL;
}

char *wasmpipe_backend_state_put(const uint8_t *key, size_t key_len, const uint8_t *value,
                                 size_t value_len, const uint64_t *ttl_ms) {
    tell();
    typed_plugin_list_u8_t k = lend(key, key_len), v = lend(value, value_len);
    uint64_t ttl = ttl_ms ? *ttl_ms : 0;
    wit_state_error err;
    if (!wasmpipe_transform_state_put(&k, &v, ttl_ms ? &ttl : NULL, &err)) return refusal(&err);
    return NULL;
}

char *wasmpipe_backend_state_delete(const uint8_t *key, size_t key_len) {
    tell();
    typed_plugin_list_u8_t k = lend(key, key_len);
    wit_state_error err;
    if (!wasmpipe_transform_state_delete(&k, &err)) return refusal(&err);
    return NULL;
}

int64_t wasmpipe_backend_state_stream_time(void) {
    tell();
    return wasmpipe_transform_state_stream_time();
}

static wasmpipe_transform_state_bound_t wit_bound(const wasmpipe_bound *b) {
    wasmpipe_transform_state_bound_t w = {0};
    switch (b->kind) {
    case WASMPIPE_BOUND_UNBOUNDED:
        w.tag = WASMPIPE_TRANSFORM_STATE_BOUND_UNBOUNDED;
        break;
    case WASMPIPE_BOUND_INCLUDED:
        w.tag = WASMPIPE_TRANSFORM_STATE_BOUND_INCLUDED;
        w.val.included = lend(b->key, b->len);
        break;
    case WASMPIPE_BOUND_EXCLUDED:
        w.tag = WASMPIPE_TRANSFORM_STATE_BOUND_EXCLUDED;
        w.val.excluded = lend(b->key, b->len);
        break;
    }
    return w;
}

char *wasmpipe_backend_state_scan(const wasmpipe_bound *start, const wasmpipe_bound *end,
                                  uint32_t limit, wasmpipe_page *page) {
    tell();
    wasmpipe_transform_state_bound_t s = wit_bound(start), e = wit_bound(end);
    typed_plugin_list_tuple2_list_u8_list_u8_t got;
    wit_state_error err;
    if (!wasmpipe_transform_state_scan(&s, &e, limit, &got, &err)) return refusal(&err);
    page->count = got.len;
    page->entries = got.len ? wasmpipe_alloc(got.len * sizeof *page->entries) : NULL;
    for (size_t i = 0; i < got.len; i++) {
        typed_plugin_tuple2_list_u8_list_u8_t *t = &got.ptr[i];
        page->entries[i] = (wasmpipe_page_entry){take(&t->f0), take(&t->f1), t->f0.len, t->f1.len};
    }
    if (got.len) free(got.ptr);
    return NULL;
}
