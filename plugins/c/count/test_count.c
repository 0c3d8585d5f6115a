/* Unit tests of the count logic and of the state double it runs on,
 * natively: make test */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wasmpipe_testing.h"

#define BYTES(s) (const uint8_t *)(s), strlen(s)

/* Runs count over records with these keys (NULL: no key); returns the
 * output values joined by commas. */
static const char *counts(const char *const *keys, size_t n) {
    static char buf[1024];
    buf[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        wasmpipe_record record = wasmpipe_test_record(keys[i], "v");
        wasmpipe_test_add_header(&record, "h", "1");
        wasmpipe_test_result r = wasmpipe_test_run(&record);
        WASMPIPE_EXPECT_STR(r.error, NULL);
        for (size_t o = 0; o < r.count; o++) {
            const wasmpipe_output *out = r.outputs[o];
            WASMPIPE_EXPECT_STR((const char *)out->key.data, keys[i]);
            WASMPIPE_EXPECT(out->header_count == 1 && !out->has_timestamp && !out->topic);
            if (buf[0]) strcat(buf, ",");
            strcat(buf, (const char *)out->value.data);
        }
    }
    return buf;
}
#define COUNTS(...) \
    counts((const char *const[]){__VA_ARGS__}, sizeof((const char *const[]){__VA_ARGS__}) / sizeof(char *))

/* A key as text, bytes outside printable ASCII as \xNN. */
static void show(char *to, wasmpipe_bytes b) {
    to += strlen(to);
    for (size_t i = 0; i < b.len; i++) {
        unsigned char c = b.data[i];
        to += sprintf(to, c >= 0x20 && c < 0x7f && c != '\\' ? "%c" : "\\x%02x", c);
    }
}

/* The keys a scan yields, joined by commas; "ERROR" if it fails. */
static const char *keys_of(wasmpipe_scan *scan) {
    static char buf[8192];
    buf[0] = '\0';
    wasmpipe_bytes key, value;
    wasmpipe_scan_status s;
    bool first = true;
    while ((s = wasmpipe_scan_next(scan, &key, &value, NULL)) == WASMPIPE_SCAN_ENTRY) {
        if (!first) strcat(buf, ",");
        first = false;
        show(buf, key);
    }
    WASMPIPE_EXPECT(wasmpipe_scan_next(scan, &key, &value, NULL) == WASMPIPE_SCAN_DONE);
    wasmpipe_scan_free(scan);
    return s == WASMPIPE_SCAN_ERROR ? "ERROR" : buf;
}

/* Every live entry of the double as key=count, joined by commas. */
static const char *entries(void) {
    static char buf[1024];
    buf[0] = '\0';
    wasmpipe_test_state st = wasmpipe_test_state_entries();
    for (size_t i = 0; i < st.count; i++) {
        const wasmpipe_test_entry *e = &st.entries[i];
        char *end = buf + strlen(buf);
        sprintf(end, "%s%s=%llu", i ? "," : "", (const char *)e->key.data,
                (unsigned long long)wasmpipe_decode_u64(e->value.data, e->value.len));
    }
    return buf;
}

/* A throwaway transform: writes, then fails the record. */
static bool write_then_fail(const wasmpipe_record *record, wasmpipe_outputs *out,
                            wasmpipe_error *error) {
    uint8_t n[8];
    wasmpipe_encode_u64(99, n);
    wasmpipe_emit(out, record);
    if (!wasmpipe_state_put(BYTES("a"), n, 8, error)) return false;        /* replaces */
    if (!wasmpipe_state_put(BYTES("a"), n, 4, error)) return false;        /* twice */
    if (!wasmpipe_state_put(BYTES("new"), n, 8, error)) return false;      /* adds */
    if (!wasmpipe_state_delete(BYTES("b"), error)) return false;           /* removes */
    if (!wasmpipe_state_delete(BYTES("never-set"), error)) return false;   /* no-op */
    return wasmpipe_fail(error, "refused after writing to %.*s", (int)record->key.len,
                         (const char *)record->key.data);
}

/* Throwaway transforms for TTLs: the record's value says what to do. */
static const char *seen; /* what "get" found: the value, or "(none)" */
static bool ttl_ops(const wasmpipe_record *record, wasmpipe_outputs *out, wasmpipe_error *error) {
    (void)out;
    static char buf[64];
    const char *op = (const char *)record->value.data;
    if (strcmp(op, "put") == 0) {
        return wasmpipe_state_put_ttl(BYTES("session"), BYTES("open"), 500, error);
    }
    wasmpipe_value v;
    if (!wasmpipe_state_get(BYTES("session"), &v, error)) return false;
    snprintf(buf, sizeof buf, "%.*s", v.found ? (int)v.len : 6, v.found ? (const char *)v.data : "(none)");
    wasmpipe_value_free(&v);
    seen = buf;
    return true;
}

static void run_at(wasmpipe_transform_fn fn, const char *op, int64_t timestamp) {
    wasmpipe_record record = wasmpipe_test_record("k", op);
    record.timestamp = timestamp;
    WASMPIPE_EXPECT_STR(wasmpipe_test_run_with(fn, &record).error, NULL);
}

static void counts_per_key(void) {
    wasmpipe_test_reset_state();
    WASMPIPE_EXPECT_STR(wasmpipe_test_init((const char *const[]){NULL}), NULL);
    WASMPIPE_EXPECT_STR(COUNTS("a", "b", NULL, "a", "a"), "1,1,2,3");
    WASMPIPE_EXPECT_STR(COUNTS("b", ""), "2,1"); /* an empty key is a key */
    WASMPIPE_EXPECT_STR(entries(), "=1,a=3,b=2");

    /* A stored value that is not a u64 counts as 0. */
    WASMPIPE_EXPECT(wasmpipe_state_put(BYTES("odd"), BYTES("7"), NULL));
    WASMPIPE_EXPECT_STR(COUNTS("odd"), "1");
}

static void refuses_config(void) {
    char *refused = wasmpipe_test_init((const char *const[]){"mode", "x", NULL});
    WASMPIPE_EXPECT_STR(refused, "unknown config key 'mode': this plugin takes no config");
    free(refused);
}

static void failed_record_leaves_no_state(void) {
    wasmpipe_test_reset_state();
    WASMPIPE_EXPECT_STR(COUNTS("a", "a", "b"), "1,2,1");
    wasmpipe_record record = wasmpipe_test_record("x", "v");
    wasmpipe_test_result r = wasmpipe_test_run_with(write_then_fail, &record);
    WASMPIPE_EXPECT_STR(r.error, "refused after writing to x");
    WASMPIPE_EXPECT(r.count == 0);
    WASMPIPE_EXPECT_STR(entries(), "a=2,b=1");
    WASMPIPE_EXPECT_STR(COUNTS("a", "new", "b"), "3,1,2");
}

static void ttl_counts_in_stream_time(void) {
    wasmpipe_test_reset_state();
    int64_t t = 0;
    WASMPIPE_EXPECT(!wasmpipe_state_stream_time(&t));
    run_at(ttl_ops, "put", 1000); /* expires at 1500 */
    WASMPIPE_EXPECT(wasmpipe_state_stream_time(&t) && t == 1000);
    run_at(ttl_ops, "get", 1499);
    WASMPIPE_EXPECT_STR(seen, "open");
    run_at(ttl_ops, "get", 900); /* a late record: stream time stays */
    WASMPIPE_EXPECT(wasmpipe_state_stream_time(&t) && t == 1499);
    WASMPIPE_EXPECT_STR(seen, "open");
    run_at(ttl_ops, "get", 1500);
    WASMPIPE_EXPECT_STR(seen, "(none)");
    WASMPIPE_EXPECT_STR(keys_of(wasmpipe_state_scan(NULL, 0, NULL, 0)), "");
    run_at(ttl_ops, "get", 1200); /* does not bring it back */
    WASMPIPE_EXPECT_STR(seen, "(none)");
    WASMPIPE_EXPECT(wasmpipe_test_state_entries().count == 0);

    /* Before any record (and for negative stream times), from 0. */
    wasmpipe_test_reset_state();
    WASMPIPE_EXPECT(wasmpipe_state_put_ttl(BYTES("session"), BYTES("open"), 500, NULL));
    run_at(ttl_ops, "get", -10000);
    WASMPIPE_EXPECT_STR(seen, "open");
    run_at(ttl_ops, "get", 500);
    WASMPIPE_EXPECT_STR(seen, "(none)");
    /* A huge TTL saturates rather than wrapping. */
    WASMPIPE_EXPECT(wasmpipe_state_put_ttl(BYTES("session"), BYTES("open"), UINT64_MAX, NULL));
    run_at(ttl_ops, "get", INT64_MAX - 1);
    WASMPIPE_EXPECT_STR(seen, "open");
}

static void scan_order_and_bounds(void) {
    wasmpipe_test_reset_state();
    const char *const keys[] = {"b", "ab", "a", "ac", "abc", "ab\xff", "\xff\xff", "", "aa"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        WASMPIPE_EXPECT(wasmpipe_state_put(BYTES(keys[i]), BYTES("v"), NULL));
    }
    WASMPIPE_EXPECT_STR(keys_of(wasmpipe_state_scan(NULL, 0, NULL, 0)),
                        ",a,aa,ab,abc,ab\\xff,ac,b,\\xff\\xff");
    WASMPIPE_EXPECT_STR(keys_of(wasmpipe_state_scan(BYTES("ab"), BYTES("ac"))), "ab,abc,ab\\xff");
    WASMPIPE_EXPECT_STR(keys_of(wasmpipe_state_scan(BYTES("aa"), NULL, 0)),
                        "aa,ab,abc,ab\\xff,ac,b,\\xff\\xff");
    WASMPIPE_EXPECT_STR(keys_of(wasmpipe_state_scan(NULL, 0, BYTES("aa"))), ",a");
    WASMPIPE_EXPECT_STR(keys_of(wasmpipe_state_scan(BYTES("b"), BYTES("a"))), "");
    WASMPIPE_EXPECT_STR(keys_of(wasmpipe_state_scan_prefix(BYTES("ab"))), "ab,abc,ab\\xff");
    WASMPIPE_EXPECT_STR(keys_of(wasmpipe_state_scan_prefix(BYTES("a"))), "a,aa,ab,abc,ab\\xff,ac");
    WASMPIPE_EXPECT_STR(keys_of(wasmpipe_state_scan_prefix(BYTES("\xff"))), "\\xff\\xff");
    WASMPIPE_EXPECT_STR(keys_of(wasmpipe_state_scan_prefix(BYTES("ab\xff"))), "ab\\xff");
    WASMPIPE_EXPECT_STR(keys_of(wasmpipe_state_scan_prefix(BYTES("z"))), "");
    WASMPIPE_EXPECT_STR(keys_of(wasmpipe_state_scan_prefix(NULL, 0)),
                        ",a,aa,ab,abc,ab\\xff,ac,b,\\xff\\xff");

    /* Deleted keys are gone; values come back whole. */
    WASMPIPE_EXPECT(wasmpipe_state_delete(BYTES("abc"), NULL));
    WASMPIPE_EXPECT(wasmpipe_state_put(BYTES("ab"), (const uint8_t *)"x\0y", 3, NULL));
    wasmpipe_scan *scan = wasmpipe_state_scan_prefix(BYTES("ab"));
    wasmpipe_bytes key, value;
    WASMPIPE_EXPECT(wasmpipe_scan_next(scan, &key, &value, NULL) == WASMPIPE_SCAN_ENTRY);
    WASMPIPE_EXPECT(key.len == 2 && memcmp(key.data, "ab", 2) == 0);
    WASMPIPE_EXPECT(value.len == 3 && memcmp(value.data, "x\0y", 3) == 0);
    WASMPIPE_EXPECT(wasmpipe_scan_next(scan, &key, &value, NULL) == WASMPIPE_SCAN_ENTRY);
    WASMPIPE_EXPECT(key.len == 3 && memcmp(key.data, "ab\xff", 3) == 0);
    WASMPIPE_EXPECT(wasmpipe_scan_next(scan, &key, &value, NULL) == WASMPIPE_SCAN_DONE);
    wasmpipe_scan_free(scan);

    /* An empty value is found, not absent. */
    WASMPIPE_EXPECT(wasmpipe_state_put(BYTES("empty"), NULL, 0, NULL));
    wasmpipe_value v;
    WASMPIPE_EXPECT(wasmpipe_state_get(BYTES("empty"), &v, NULL) && v.found && v.data && v.len == 0);
    wasmpipe_value_free(&v);
    WASMPIPE_EXPECT(wasmpipe_state_get(BYTES("abc"), &v, NULL) && !v.found && !v.data);
}

/* Scans of more than a page (256) go on from the last key, excluded. */
static void scan_pages(void) {
    static const int totals[] = {255, 256, 257, 512, 769};
    for (size_t t = 0; t < sizeof totals / sizeof *totals; t++) {
        const int total = totals[t];
        wasmpipe_test_reset_state();
        char k[16];
        for (int i = 0; i < total; i++) {
            snprintf(k, sizeof k, "k%05d", i);
            WASMPIPE_EXPECT(wasmpipe_state_put(BYTES(k), BYTES(k), NULL));
        }
        WASMPIPE_EXPECT(wasmpipe_state_put(BYTES("l"), BYTES("past the prefix"), NULL));
        wasmpipe_scan *scan = wasmpipe_state_scan_prefix(BYTES("k"));
        wasmpipe_bytes key, value;
        int n = 0;
        while (wasmpipe_scan_next(scan, &key, &value, NULL) == WASMPIPE_SCAN_ENTRY) {
            snprintf(k, sizeof k, "k%05d", n++);
            WASMPIPE_EXPECT(key.len == 6 && memcmp(key.data, k, 6) == 0);
            WASMPIPE_EXPECT(value.len == 6 && memcmp(value.data, k, 6) == 0);
        }
        wasmpipe_scan_free(scan);
        WASMPIPE_EXPECT(n == total);
    }
}

static void u64_layout(void) {
    uint8_t b[8];
    wasmpipe_encode_u64(0x0102030405060708ull, b);
    WASMPIPE_EXPECT(memcmp(b, "\x01\x02\x03\x04\x05\x06\x07\x08", 8) == 0);
    WASMPIPE_EXPECT(wasmpipe_decode_u64(b, 8) == 0x0102030405060708ull);
    WASMPIPE_EXPECT(wasmpipe_decode_u64(b, 7) == 0);
    WASMPIPE_EXPECT(wasmpipe_decode_u64(NULL, 0) == 0);
}

int main(void) {
    counts_per_key();
    refuses_config();
    failed_record_leaves_no_state();
    ttl_counts_in_stream_time();
    scan_order_and_bounds();
    scan_pages();
    u64_layout();
    wasmpipe_test_reset_state();

    int failures = wasmpipe_test_failures();
    printf("count: %s\n", failures ? "FAILED" : "ok");
    return failures != 0;
}
