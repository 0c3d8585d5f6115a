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

wasmpipe_test_result wasmpipe_test_run(const wasmpipe_record *record) {
    static wasmpipe_outputs out;
    static char *last_error;
    free(last_error);
    last_error = wasmpipe_run_transform(record, &out);
    return (wasmpipe_test_result){last_error, out.count, (const wasmpipe_output *const *)out.items};
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
