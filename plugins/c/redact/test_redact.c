/* Unit tests of the redact logic, natively: make test */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wasmpipe_testing.h"

/* Runs one record through a fresh init; returns the output value, or the
 * error prefixed with "error: ". */
static char *run(const char *const *config, const char *value) {
    static char buf[4096];
    char *refused = wasmpipe_test_init(config);
    if (refused) {
        snprintf(buf, sizeof buf, "refused: %s", refused);
        free(refused);
        return buf;
    }
    wasmpipe_record record = wasmpipe_test_record("k", value);
    wasmpipe_test_add_header(&record, "h", "1");
    wasmpipe_test_result r = wasmpipe_test_run(&record);
    if (r.error) {
        snprintf(buf, sizeof buf, "error: %s", r.error);
        return buf;
    }
    WASMPIPE_EXPECT(r.count == 1);
    const wasmpipe_output *out = r.outputs[0];
    WASMPIPE_EXPECT_STR((const char *)out->key.data, "k");
    WASMPIPE_EXPECT(out->header_count == 1);
    WASMPIPE_EXPECT_STR(out->headers[0].name, "h");
    WASMPIPE_EXPECT_STR((const char *)out->headers[0].value.data, "1");
    if (!out->value.present) return "(tombstone)";
    snprintf(buf, sizeof buf, "%s", (const char *)out->value.data);
    return buf;
}

#define CONFIG(...) ((const char *const[]){__VA_ARGS__, NULL})

int main(void) {
    /* masks nested and wildcard fields keeping order */
    WASMPIPE_EXPECT_STR(
        run(CONFIG("mask", "user.email, cards.*.number"),
            "{\"user\":{\"name\":\"Ann\",\"email\":\"a@x.io\"},\"cards\":[{\"number\":\"4111\","
            "\"exp\":\"12/30\"},{\"number\":\"5500\"}]}"),
        "{\"user\":{\"name\":\"Ann\",\"email\":\"***\"},\"cards\":[{\"number\":\"***\","
        "\"exp\":\"12/30\"},{\"number\":\"***\"}]}");

    /* drops fields and uses a custom mask */
    WASMPIPE_EXPECT_STR(run(CONFIG("drop", "ssn", "mask", "name", "mask_with", "X"),
                            "{\"name\":\"Ann\",\"ssn\":\"1\",\"age\":3}"),
                        "{\"name\":\"X\",\"age\":3}");

    /* array indexes and wildcards; a wildcard drop empties an object */
    WASMPIPE_EXPECT_STR(run(CONFIG("mask", "a.1, b.*", "drop", "c.*"),
                            "{\"a\":[1,2,3],\"b\":[4,5],\"c\":{\"x\":1,\"y\":2}}"),
                        "{\"a\":[1,\"***\",3],\"b\":[\"***\",\"***\"],\"c\":{}}");

    /* a tombstone passes through */
    WASMPIPE_EXPECT_STR(run(CONFIG("mask", "a"), NULL), "(tombstone)");

    /* non-JSON and non-UTF-8 are errors, not leaks */
    WASMPIPE_EXPECT_STR(run(CONFIG("mask", "a"), "not json"),
                        "error: value is not JSON: invalid at byte 0");
    WASMPIPE_EXPECT_STR(run(CONFIG("mask", "a"), "{\"a\":1} x"),
                        "error: value is not JSON: invalid at byte 8");
    WASMPIPE_EXPECT_STR(run(CONFIG("mask", "a"), "\"\xff\""),
                        "error: value is not JSON: not UTF-8");

    /* config errors name the fix */
    WASMPIPE_EXPECT(strstr(run(CONFIG("mask_with", "X"), "{}"), "refused: set 'mask'") != NULL);
    WASMPIPE_EXPECT_STR(run(CONFIG("mask", "a..b"), "{}"),
                        "refused: invalid field path 'a..b': write fields separated by dots, like "
                        "'user.email'");
    WASMPIPE_EXPECT_STR(run(CONFIG("masks", "a"), "{}"),
                        "refused: unknown config key 'masks' (known: mask, drop, mask_with)");

    int failures = wasmpipe_test_failures();
    printf("redact: %s\n", failures ? "FAILED" : "ok");
    return failures != 0;
}
