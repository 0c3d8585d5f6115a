/*
 * Masks or drops JSON fields by path, for PII: the C twin of the Rust
 * `redact` plugin, held to the same conformance suite.
 *
 * Config:
 * - mask: comma-separated field paths whose values are replaced by
 *   mask_with (default "***"), e.g. user.email,cards.*.number;
 * - drop: comma-separated field paths removed from the document;
 * - mask_with: the replacement string.
 *
 * A path is fields separated by dots; `*` is every element of an array or
 * every field of an object on the way, a number indexes an array.
 * Tombstones pass through. A value that is not JSON (or not UTF-8) is an
 * error, so it is dead-lettered rather than leaked unredacted. JSON is read
 * and written by cJSON, which keeps field order; it holds numbers as
 * doubles, like JavaScript.
 */
#include <stdlib.h>
#include <string.h>

#include "cJSON.h"
#include "wasmpipe.h"

typedef struct {
    char **segments;
    size_t count;
} path;

typedef struct {
    path *items;
    size_t count;
} paths;

static paths mask, drop;
static const char *mask_with = "***";

static void *must(void *p) {
    if (!p) abort(); /* out of memory: the host dead-letters the record */
    return p;
}

static char *trimmed(const char *start, const char *end) {
    while (start < end && (*start == ' ' || *start == '\t' || *start == '\n' || *start == '\r'))
        start++;
    while (end > start && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n' || end[-1] == '\r'))
        end--;
    char *s = must(malloc((size_t)(end - start) + 1));
    memcpy(s, start, (size_t)(end - start));
    s[end - start] = '\0';
    return s;
}

static bool parse_path(const char *text, path *p, wasmpipe_error *error) {
    p->count = 1;
    for (const char *c = text; *c; c++) p->count += *c == '.';
    p->segments = must(calloc(p->count, sizeof *p->segments));
    const char *start = text;
    for (size_t i = 0; i < p->count; i++) {
        const char *dot = strchr(start, '.');
        const char *end = dot ? dot : start + strlen(start);
        if (end == start) {
            return wasmpipe_fail(error,
                                 "invalid field path '%s': write fields separated by dots, like "
                                 "'user.email'",
                                 text);
        }
        p->segments[i] = must(malloc((size_t)(end - start) + 1));
        memcpy(p->segments[i], start, (size_t)(end - start));
        p->segments[i][end - start] = '\0';
        start = end + 1;
    }
    return true;
}

static void free_paths(paths *ps) {
    for (size_t i = 0; i < ps->count; i++) {
        for (size_t s = 0; s < ps->items[i].count; s++) free(ps->items[i].segments[s]);
        free(ps->items[i].segments);
    }
    free(ps->items);
    *ps = (paths){0};
}

/* The comma-separated paths of a config value, blanks skipped. */
static bool parse_paths(const char *value, paths *out, wasmpipe_error *error) {
    free_paths(out);
    if (!value) return true;
    for (const char *start = value;;) {
        const char *comma = strchr(start, ',');
        const char *end = comma ? comma : start + strlen(start);
        char *text = trimmed(start, end);
        if (*text) {
            out->items = must(realloc(out->items, (out->count + 1) * sizeof *out->items));
            bool ok = parse_path(text, &out->items[out->count++], error);
            free(text);
            if (!ok) return false;
        } else {
            free(text);
        }
        if (!comma) return true;
        start = comma + 1;
    }
}

bool wasmpipe_init(const wasmpipe_config *config, wasmpipe_error *error) {
    static const char *const known[] = {"mask", "drop", "mask_with", NULL};
    if (!wasmpipe_config_only(config, known, error)) return false;
    if (!parse_paths(wasmpipe_config_get(config, "mask"), &mask, error)) return false;
    if (!parse_paths(wasmpipe_config_get(config, "drop"), &drop, error)) return false;
    mask_with = wasmpipe_config_get_or(config, "mask_with", "***");
    if (mask.count == 0 && drop.count == 0) {
        return wasmpipe_fail(error, "set 'mask' and/or 'drop' to the field paths to redact, e.g. "
                                    "mask=user.email");
    }
    return true;
}

/* An array index as Rust's usize parse reads it (an optional '+'); -1 if
 * the segment is not one. */
static long long index_of(const char *text) {
    if (*text == '+') text++;
    if (!*text) return -1;
    long long i = 0;
    for (; *text; text++) {
        if (*text < '0' || *text > '9') return -1;
        if (i > 1000000000LL) return 1000000000LL; /* past any array's end */
        i = i * 10 + (*text - '0');
    }
    return i;
}

typedef void (*visit_fn)(cJSON *parent, const char *last);

/* Calls visit(parent, last) wherever `segments` end in `node`. */
static void parents(cJSON *node, char *const *segments, size_t count, visit_fn visit) {
    const char *head = segments[0];
    if (count == 1) {
        visit(node, head);
        return;
    }
    cJSON *child;
    if (cJSON_IsObject(node)) {
        if (strcmp(head, "*") == 0) {
            cJSON_ArrayForEach(child, node) parents(child, segments + 1, count - 1, visit);
        } else if ((child = cJSON_GetObjectItemCaseSensitive(node, head))) {
            parents(child, segments + 1, count - 1, visit);
        }
    } else if (cJSON_IsArray(node)) {
        if (strcmp(head, "*") == 0) {
            cJSON_ArrayForEach(child, node) parents(child, segments + 1, count - 1, visit);
        } else {
            long long i = index_of(head);
            if (i >= 0 && i < cJSON_GetArraySize(node)) {
                parents(cJSON_GetArrayItem(node, (int)i), segments + 1, count - 1, visit);
            }
        }
    }
}

static void mask_field(cJSON *parent, const char *last) {
    if (cJSON_IsObject(parent)) {
        if (cJSON_GetObjectItemCaseSensitive(parent, last)) {
            cJSON_ReplaceItemInObjectCaseSensitive(parent, last, must(cJSON_CreateString(mask_with)));
        }
    } else if (cJSON_IsArray(parent)) {
        int size = cJSON_GetArraySize(parent);
        long long i = strcmp(last, "*") == 0 ? -2 : index_of(last);
        for (int j = 0; j < size; j++) {
            if (i == -2 || i == j) {
                cJSON_ReplaceItemInArray(parent, j, must(cJSON_CreateString(mask_with)));
            }
        }
    }
}

static void drop_field(cJSON *parent, const char *last) {
    if (!cJSON_IsObject(parent)) return;
    if (strcmp(last, "*") == 0) {
        while (parent->child) cJSON_DeleteItemFromArray(parent, 0);
    } else {
        cJSON_DeleteItemFromObjectCaseSensitive(parent, last);
    }
}

/* Strict UTF-8 (no overlongs, surrogates or code points past U+10FFFF),
 * as the other SDKs decode a JSON value. */
static bool is_utf8(const uint8_t *s, size_t len) {
    for (size_t i = 0; i < len;) {
        uint8_t c = s[i];
        size_t n = c < 0x80 ? 0 : c < 0xc2 ? 9 : c < 0xe0 ? 1 : c < 0xf0 ? 2 : c < 0xf5 ? 3 : 9;
        if (n == 9 || len - i <= n) return false;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return false;
        }
        if ((c == 0xe0 && s[i + 1] < 0xa0) || (c == 0xed && s[i + 1] > 0x9f) ||
            (c == 0xf0 && s[i + 1] < 0x90) || (c == 0xf4 && s[i + 1] > 0x8f)) {
            return false; /* overlong, a surrogate, or past U+10FFFF */
        }
        i += n + 1;
    }
    return true;
}

bool wasmpipe_transform(const wasmpipe_record *record, wasmpipe_outputs *out,
                        wasmpipe_error *error) {
    if (!record->value.data) return wasmpipe_forward(out, record);
    const uint8_t *value = record->value.data;
    size_t len = record->value.len;
    if (!is_utf8(value, len)) return wasmpipe_fail(error, "value is not JSON: not UTF-8");
    if (memchr(value, '\0', len)) return wasmpipe_fail(error, "value is not JSON: a NUL byte");
    /* cJSON wants the terminating NUL inside the length it is given. */
    char *text = must(malloc(len + 1));
    memcpy(text, value, len);
    text[len] = '\0';
    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithLengthOpts(text, len + 1, &end, true);
    if (!doc) {
        size_t at = end ? (size_t)(end - text) : 0;
        free(text);
        return wasmpipe_fail(error, "value is not JSON: invalid at byte %zu", at);
    }
    free(text);
    for (size_t i = 0; i < mask.count; i++) {
        parents(doc, mask.items[i].segments, mask.items[i].count, mask_field);
    }
    for (size_t i = 0; i < drop.count; i++) {
        parents(doc, drop.items[i].segments, drop.items[i].count, drop_field);
    }
    char *printed = must(cJSON_PrintUnformatted(doc));
    cJSON_Delete(doc);
    wasmpipe_output_set_value(wasmpipe_emit(out, record), (const uint8_t *)printed,
                              strlen(printed));
    free(printed);
    return true;
}
