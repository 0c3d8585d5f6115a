/*
 * Unit tests of a plugin's logic, natively: compile the plugin with
 * sdk/c/wasmpipe.c and sdk/c/testing.c by the machine's own C compiler and
 * drive it through the same SDK code the component runs.
 *
 *     cc -I sdk/c plugin.c test.c sdk/c/wasmpipe.c sdk/c/testing.c -o test && ./test
 */
#ifndef WASMPIPE_TESTING_H
#define WASMPIPE_TESTING_H

#include "wasmpipe_internal.h"

/* Runs the plugin's init with KEY, VALUE, ..., NULL; returns the refusal
 * (caller frees) or NULL. */
char *wasmpipe_test_init(const char *const *pairs);

/* A record with text key and value (NULL: absent), on topic "test", with
 * timestamp 0: set `record.timestamp` (ms) to move stream time, which is
 * what state TTLs count in. */
wasmpipe_record wasmpipe_test_record(const char *key, const char *value);
/* Appends a header (value NULL: a null value) to a record made above. */
void wasmpipe_test_add_header(wasmpipe_record *record, const char *name, const char *value);

typedef struct {
    char *error; /* NULL when the record succeeded */
    size_t count;
    /* key, value, headers[i].name, headers[i].value: NUL-terminated */
    const wasmpipe_output *const *outputs;
} wasmpipe_test_result;

/* Runs transform on one record, as the record of a batch: stream time moves
 * up to its timestamp, and if it fails, its state writes are undone. The
 * result's outputs last until the next run. */
wasmpipe_test_result wasmpipe_test_run(const wasmpipe_record *record);
/* The same with `transform` in the plugin's place: a throwaway transform
 * that, say, writes state and then fails. */
wasmpipe_test_result wasmpipe_test_run_with(wasmpipe_transform_fn transform,
                                            const wasmpipe_record *record);

/* The state double: the wasmpipe_state_* calls work natively on an
 * in-memory map with the host's rules (TTL in stream time, a failed
 * record's writes undone). It lives for the whole test program: reset it
 * at the start of each test that uses state. The calls may also be made
 * directly from a test, outside any record. */
void wasmpipe_test_reset_state(void);

typedef struct {
    wasmpipe_bytes key, value; /* NUL-terminated copies */
} wasmpipe_test_entry;

typedef struct {
    size_t count;
    const wasmpipe_test_entry *entries;
} wasmpipe_test_state;

/* Every live entry of the double, in key order; lasts until the next call. */
wasmpipe_test_state wasmpipe_test_state_entries(void);

/* Checks that count and print what differs; wasmpipe_test_failures() is
 * the number of failed checks so far (a test's exit status). */
#define WASMPIPE_EXPECT(cond) wasmpipe_test_expect((cond), #cond, __FILE__, __LINE__)
#define WASMPIPE_EXPECT_STR(actual, expected) \
    wasmpipe_test_expect_str((actual), (expected), #actual, __FILE__, __LINE__)
void wasmpipe_test_expect(bool ok, const char *what, const char *file, int line);
void wasmpipe_test_expect_str(const char *actual, const char *expected, const char *what,
                              const char *file, int line);
int wasmpipe_test_failures(void);

#endif
