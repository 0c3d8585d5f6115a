/*
 * The SDK's core: config, errors, outputs and logging, shared by the
 * component (component.c) and the native test harness (testing.c).
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
    if (config->count == 0) return true;
    return wasmpipe_fail(error, "unknown config key '%s': this plugin takes no config",
                         config->keys[0]);
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

char *wasmpipe_run_transform(const wasmpipe_record *record, wasmpipe_outputs *out) {
    wasmpipe_error error = {NULL};
    wasmpipe_outputs_clear(out);
    if (wasmpipe_transform(record, out, &error)) {
        free(error.message);
        return NULL;
    }
    wasmpipe_outputs_clear(out);
    return reason(&error, "transform failed (the plugin gave no reason)");
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
