/*
 * The running count of records per key, as Kafka Streams'
 * groupByKey().count() and the Rust, Python and JavaScript count examples:
 * each record with a key emits one output with that key and, as its value,
 * how many records of the key the partition has seen, in decimal. Records
 * without a key are skipped. The count is kept in wasmpipe's keyed state
 * as a u64, big-endian (the other examples' layout: each reads the
 * others' state).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "wasmpipe.h"

bool wasmpipe_init(const wasmpipe_config *config, wasmpipe_error *error) {
    static const char *const none[] = {NULL};
    return wasmpipe_config_only(config, none, error);
}

bool wasmpipe_transform(const wasmpipe_record *record, wasmpipe_outputs *out,
                        wasmpipe_error *error) {
    const wasmpipe_bytes key = record->key;
    if (!key.data) return true;

    wasmpipe_value stored;
    if (!wasmpipe_state_get(key.data, key.len, &stored, error)) return false;
    uint64_t count = wasmpipe_decode_u64(stored.data, stored.len) + 1;
    wasmpipe_value_free(&stored);

    uint8_t be[8];
    wasmpipe_encode_u64(count, be);
    if (!wasmpipe_state_put(key.data, key.len, be, sizeof be, error)) return false;

    char text[24];
    int len = snprintf(text, sizeof text, "%" PRIu64, count);
    wasmpipe_output *o = wasmpipe_emit(out, record);
    wasmpipe_output_set_value(o, (const uint8_t *)text, (size_t)len);
    return true;
}
