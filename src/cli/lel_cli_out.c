/* lelctl's output for people (tables, field lists) and for scripts (JSON). */
#include "lel_cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void lel_cli_print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_ENCODE_ANY);
    if (s)
        puts(s);
    free(s);
}

const char *lel_cli_cell(json_t *o, const char *field)
{
    static char ring[8][64]; /* lelctl is single-threaded: see the header for the lifetime */
    static int next;
    json_t *v = json_object_get(o, field);
    if (!v || json_is_null(v))
        return "";
    if (json_is_string(v))
        return json_string_value(v);
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    char *slot = ring[next++ % 8];
    snprintf(slot, 64, "%s", s ? s : "");
    free(s);
    return slot;
}

/* Display width of a UTF-8 string: its code points (good enough for ids, names and dates). */
static size_t width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        w += ((unsigned char)*s & 0xc0) != 0x80;
    return w;
}

static void cell(const char *s, size_t w, int last)
{
    fputs(s, stdout);
    if (!last)
        for (size_t i = width(s); i < w + 2; i++)
            putchar(' ');
}

void lel_cli_print_table(const char *const *cols, json_t *rows)
{
    size_t n = 0, w[32] = {0};
    while (cols[n] && n < 32)
        n++;
    for (size_t i = 0; i < n; i++)
        w[i] = width(cols[i]);
    size_t r;
    json_t *row;
    json_array_foreach (rows, r, row)
        for (size_t i = 0; i < n; i++) {
            const char *s = json_string_value(json_array_get(row, i));
            if (s && width(s) > w[i])
                w[i] = width(s);
        }
    for (size_t i = 0; i < n; i++)
        cell(cols[i], w[i], i + 1 == n);
    putchar('\n');
    json_array_foreach (rows, r, row) {
        for (size_t i = 0; i < n; i++) {
            const char *s = json_string_value(json_array_get(row, i));
            cell(s ? s : "", w[i], i + 1 == n);
        }
        putchar('\n');
    }
}

void lel_cli_print_fields(json_t *obj)
{
    const char *k;
    json_t *v;
    size_t w = 0;
    json_object_foreach (obj, k, v)
        if (strlen(k) > w)
            w = strlen(k);
    json_object_foreach (obj, k, v) {
        char *s = json_is_string(v) ? NULL : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        char label[256];
        snprintf(label, sizeof(label), "%s:", k);
        printf("%-*s %s\n", (int)w + 1, label, s ? s : json_string_value(v));
        free(s);
    }
}
