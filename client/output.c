/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "util/macros.h"
#include "output.h"

static const struct {
        const char *name;
        const char *suffix;
        uint64_t factor;
} size_units[] = {
        { "GiB", "G", UINT64_C(1) << 30 },
        { "MiB", "M", UINT64_C(1) << 20 },
        { "KiB", "K", UINT64_C(1) << 10 },
};

const char *format_size(char buf[static FORMAT_BUF_MAX], uint64_t bytes)
{
        for (size_t i = 0; i < ELEMENTSOF(size_units); i++) {
                uint64_t f = size_units[i].factor;
                if (bytes < f)
                        continue;
                if (bytes % f == 0)
                        snprintf(buf, FORMAT_BUF_MAX, "%" PRIu64 " %s", bytes / f, size_units[i].name);
                else {
                        /* One decimal, rounded, computed in integers so
                         * 1.95 KiB does not print as "1.9" on one libc and
                         * "2.0" on another. */
                        uint64_t tenths = (bytes * 10 + f / 2) / f;
                        snprintf(buf, FORMAT_BUF_MAX, "%" PRIu64 ".%" PRIu64 " %s", tenths / 10, tenths % 10,
                                 size_units[i].name);
                }
                return buf;
        }
        snprintf(buf, FORMAT_BUF_MAX, "%" PRIu64 " B", bytes);
        return buf;
}

const char *format_size_short(char buf[static FORMAT_BUF_MAX], uint64_t bytes)
{
        /* Only exact multiples get a suffix: a summary that rounds would
         * hide the odd sector size that makes a layout suspicious. */
        for (size_t i = 0; i < ELEMENTSOF(size_units); i++) {
                uint64_t f = size_units[i].factor;
                if (bytes >= f && bytes % f == 0) {
                        snprintf(buf, FORMAT_BUF_MAX, "%" PRIu64 "%s", bytes / f, size_units[i].suffix);
                        return buf;
                }
        }
        snprintf(buf, FORMAT_BUF_MAX, "%" PRIu64, bytes);
        return buf;
}

const char *format_address(char buf[static FORMAT_BUF_MAX], uint64_t address)
{
        snprintf(buf, FORMAT_BUF_MAX, "0x%08" PRIx64, address);
        return buf;
}

const char *format_flags(char buf[static FORMAT_BUF_MAX], unsigned flags)
{
        buf[0] = flags & 1 ? 'r' : '-';
        buf[1] = flags & 2 ? 'e' : '-';
        buf[2] = flags & 4 ? 'w' : '-';
        buf[3] = '\0';
        return buf;
}

int layout_summary(const json_t *layout, char **ret)
{
        _cleanup_free_ char *s = NULL;
        size_t len = 0;
        FILE *f;

        /* null: no layout (not a DFU device, or not read yet) */
        if (layout && !json_is_array(layout) && !json_is_null(layout))
                return -EBADMSG;

        f = open_memstream(&s, &len);
        if (!f)
                return -ENOMEM;

        size_t i;
        const json_t *region;
        bool bad = false;
        json_array_foreach (layout, i, region) {
                const json_t *sectors = json_object_get(region, "sectors");
                if (!json_is_array(sectors)) {
                        bad = true;
                        break;
                }
                if (i > 0)
                        fputs(" + ", f);

                size_t j;
                const json_t *seg;
                json_array_foreach (sectors, j, seg) {
                        const json_t *count = json_object_get(seg, "count");
                        const json_t *size = json_object_get(seg, "size");
                        char b[FORMAT_BUF_MAX];

                        if (!json_is_integer(count) || !json_is_integer(size) ||
                            json_integer_value(count) < 0 || json_integer_value(size) < 0) {
                                bad = true;
                                break;
                        }
                        fprintf(f, "%s%" JSON_INTEGER_FORMAT "x%s", j > 0 ? " " : "",
                                json_integer_value(count),
                                format_size_short(b, (uint64_t)json_integer_value(size)));
                }
                if (bad)
                        break;
        }
        if (fclose(f) != 0)
                return -ENOMEM;
        if (bad)
                return -EBADMSG;
        if (!s) {
                s = strdup("");
                if (!s)
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(s);
        return 0;
}

bool output_use_color(FILE *f)
{
        const char *term = getenv("TERM");

        /* https://no-color.org: set at all, whatever the value, means no color. */
        if (getenv("NO_COLOR"))
                return false;
        if (term && streq(term, "dumb"))
                return false;
        return isatty(fileno(f)) == 1;
}

unsigned output_terminal_width(FILE *f)
{
        const char *e = getenv("COLUMNS");
        struct winsize ws = {};

        if (e) {
                char *end;
                unsigned long v = strtoul(e, &end, 10);
                if (end != e && *end == '\0' && v > 0 && v < 10000)
                        return (unsigned)v;
        }
        if (isatty(fileno(f)) != 1)
                return 0;
        if (ioctl(fileno(f), TIOCGWINSZ, &ws) < 0 || ws.ws_col == 0)
                return 80;
        return ws.ws_col;
}

static const char *const color_codes[_OUTPUT_COLOR_MAX] = {
        [OUTPUT_COLOR_NONE] = "",          [OUTPUT_COLOR_BOLD] = "\033[1m",
        [OUTPUT_COLOR_GREEN] = "\033[32m", [OUTPUT_COLOR_YELLOW] = "\033[33m",
        [OUTPUT_COLOR_RED] = "\033[31m",   [OUTPUT_COLOR_BLUE] = "\033[34m",
        [OUTPUT_COLOR_GREY] = "\033[2m",
};

const char *output_color_on(OutputColor c, bool use_color)
{
        if (!use_color || c < 0 || c >= _OUTPUT_COLOR_MAX)
                return "";
        return color_codes[c];
}

const char *output_color_off(bool use_color)
{
        return use_color ? "\033[0m" : "";
}

size_t output_text_width(const char *s)
{
        size_t w = 0;
        for (const unsigned char *p = (const unsigned char *)s; *p; p++)
                if ((*p & 0xC0) != 0x80) /* count lead bytes, not continuation bytes */
                        w++;
        return w;
}

/* Byte length of the first `cols` code points of s. */
static size_t text_prefix_bytes(const char *s, size_t cols)
{
        const unsigned char *p = (const unsigned char *)s;
        size_t seen = 0;

        for (; *p; p++) {
                if ((*p & 0xC0) != 0x80) {
                        if (seen == cols)
                                break;
                        seen++;
                }
        }
        return (size_t)((const char *)p - s);
}

/* Columns never shrink below this (plus the ellipsis). */
#define TABLE_MIN_COLUMN 4
#define TABLE_SEPARATOR  2

typedef struct TableCell {
        char *text;
        OutputColor color;
} TableCell;

struct Table {
        size_t n_columns;
        char **headers;
        bool *shrinkable;
        TableCell *cells; /* n_rows * n_columns */
        size_t n_rows;
        size_t alloc_rows;
};

int table_new(Table **ret, size_t n_columns, const char *const *headers)
{
        Table *t;

        if (n_columns == 0)
                return -EINVAL;
        t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        t->n_columns = n_columns;
        t->headers = calloc(n_columns, sizeof(char *));
        t->shrinkable = calloc(n_columns, sizeof(bool));
        if (!t->headers || !t->shrinkable) {
                table_free(t);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n_columns; i++) {
                t->headers[i] = strdup(headers[i]);
                if (!t->headers[i]) {
                        table_free(t);
                        return -ENOMEM;
                }
                t->shrinkable[i] = i > 0;
        }
        *ret = t;
        return 0;
}

Table *table_free(Table *t)
{
        if (!t)
                return NULL;
        for (size_t i = 0; i < t->n_rows * t->n_columns; i++)
                free(t->cells[i].text);
        free(t->cells);
        if (t->headers)
                for (size_t i = 0; i < t->n_columns; i++)
                        free(t->headers[i]);
        free(t->headers);
        free(t->shrinkable);
        free(t);
        return NULL;
}

void table_set_shrinkable(Table *t, size_t column, bool shrinkable)
{
        if (column < t->n_columns)
                t->shrinkable[column] = shrinkable;
}

int table_add_row(Table *t, const char *const *cells)
{
        if (t->n_rows == t->alloc_rows) {
                size_t n = t->alloc_rows ? t->alloc_rows * 2 : 16;
                TableCell *c = reallocarray(t->cells, n * t->n_columns, sizeof(TableCell));
                if (!c)
                        return -ENOMEM;
                t->cells = c;
                t->alloc_rows = n;
        }

        TableCell *row = t->cells + t->n_rows * t->n_columns;
        for (size_t i = 0; i < t->n_columns; i++) {
                row[i].text = strdup(cells[i] && cells[i][0] ? cells[i] : "-");
                row[i].color = OUTPUT_COLOR_NONE;
                if (!row[i].text) {
                        for (size_t j = 0; j < i; j++)
                                free(row[j].text);
                        return -ENOMEM;
                }
                /* Control characters from USB strings must not reach the
                 * terminal (a product string is device-controlled). */
                for (char *p = row[i].text; *p; p++)
                        if ((unsigned char)*p < 0x20 || *p == 0x7f)
                                *p = '?';
        }
        t->n_rows++;
        return 0;
}

void table_set_last_row_color(Table *t, size_t column, OutputColor color)
{
        if (t->n_rows > 0 && column < t->n_columns)
                t->cells[(t->n_rows - 1) * t->n_columns + column].color = color;
}

size_t table_rows(const Table *t)
{
        return t->n_rows;
}

static void print_cell(FILE *f, const char *text, size_t width, bool last, OutputColor color, bool use_color)
{
        size_t w = output_text_width(text);

        fputs(output_color_on(color, use_color), f);
        if (w <= width) {
                fputs(text, f);
        } else {
                /* Cut and mark with an ellipsis so a shortened serial number
                 * is never mistaken for the whole one. */
                size_t keep = width > 0 ? width - 1 : 0;
                fwrite(text, 1, text_prefix_bytes(text, keep), f);
                fputs("…", f);
                w = width;
        }
        if (color != OUTPUT_COLOR_NONE)
                fputs(output_color_off(use_color), f);
        if (!last)
                fprintf(f, "%*s", (int)(width - w + TABLE_SEPARATOR), "");
}

int table_print(const Table *t, FILE *f, unsigned width, bool use_color, bool legend)
{
        _cleanup_free_ size_t *widths = calloc(t->n_columns, sizeof(size_t));
        if (!widths)
                return -ENOMEM;

        for (size_t c = 0; c < t->n_columns; c++) {
                if (legend)
                        widths[c] = output_text_width(t->headers[c]);
                for (size_t r = 0; r < t->n_rows; r++)
                        widths[c] = MAX(widths[c], output_text_width(t->cells[r * t->n_columns + c].text));
        }

        if (width > 0) {
                for (;;) {
                        size_t total = 0;
                        for (size_t c = 0; c < t->n_columns; c++)
                                total += widths[c] + (c + 1 < t->n_columns ? TABLE_SEPARATOR : 0);
                        if (total <= width)
                                break;
                        /* Take one column off the widest shrinkable column at a
                         * time, so the cut is spread over the long ones. */
                        size_t widest = SIZE_MAX;
                        for (size_t c = 0; c < t->n_columns; c++)
                                if (t->shrinkable[c] && widths[c] > TABLE_MIN_COLUMN &&
                                    (widest == SIZE_MAX || widths[c] > widths[widest]))
                                        widest = c;
                        if (widest == SIZE_MAX)
                                break; /* cannot fit: let the terminal wrap */
                        widths[widest]--;
                }
        }

        if (legend) {
                for (size_t c = 0; c < t->n_columns; c++) {
                        bool last = c + 1 == t->n_columns;
                        print_cell(f, t->headers[c], widths[c], last, OUTPUT_COLOR_BOLD, use_color);
                }
                fputc('\n', f);
        }
        for (size_t r = 0; r < t->n_rows; r++) {
                for (size_t c = 0; c < t->n_columns; c++) {
                        const TableCell *cell = t->cells + r * t->n_columns + c;
                        print_cell(f, cell->text, widths[c], c + 1 == t->n_columns, cell->color, use_color);
                }
                fputc('\n', f);
        }
        return ferror(f) ? -EIO : 0;
}

const char *output_label(char *buf, size_t size, const char *key)
{
        /* Words a person reads as acronyms. */
        static const char *const acronyms[] = {
                "api", "mcu", "usb", "id", "ram", "tty", "dfu", "uid", NULL
        };
        size_t i = 0;

        for (; key[i] && i + 1 < size; i++)
                buf[i] = key[i] == '_' ? ' ' : key[i];
        buf[i] = '\0';

        for (char *w = buf; *w;) {
                size_t n = strcspn(w, " ");
                for (const char *const *a = acronyms; *a; a++)
                        if (strlen(*a) == n && strncmp(w, *a, n) == 0)
                                for (size_t k = 0; k < n; k++)
                                        w[k] = (char)(w[k] - 'a' + 'A');
                w += n;
                w += strspn(w, " ");
        }
        if (buf[0] >= 'a' && buf[0] <= 'z')
                buf[0] = (char)(buf[0] - 'a' + 'A');
        return buf;
}

const char *format_duration(char buf[static FORMAT_BUF_MAX], uint64_t seconds)
{
        static const struct {
                const char *suffix;
                uint64_t seconds;
        } units[] = { { "d", 86400 }, { "h", 3600 }, { "min", 60 }, { "s", 1 } };
        size_t len = 0;
        unsigned shown = 0;

        /* Two units at most ("3d 4h"): the rest is noise for a person. */
        for (size_t i = 0; i < ELEMENTSOF(units) && shown < 2; i++) {
                uint64_t n = seconds / units[i].seconds;
                if (n == 0 && !(shown == 0 && units[i].seconds == 1))
                        continue;
                len += (size_t)snprintf(buf + len, FORMAT_BUF_MAX - len, "%s%" PRIu64 "%s", shown ? " " : "",
                                        n, units[i].suffix);
                seconds %= units[i].seconds;
                shown++;
                if (seconds == 0)
                        break;
        }
        return buf;
}

char *output_scalar(const json_t *v)
{
        char *s = NULL;

        switch (json_typeof(v)) {
        case JSON_STRING:
                return strdup(json_string_value(v));
        case JSON_INTEGER:
                return asprintf(&s, "%" JSON_INTEGER_FORMAT, json_integer_value(v)) < 0 ? NULL : s;
        case JSON_REAL:
                return asprintf(&s, "%g", json_real_value(v)) < 0 ? NULL : s;
        case JSON_TRUE:
                return strdup("yes");
        case JSON_FALSE:
                return strdup("no");
        case JSON_NULL:
        case JSON_OBJECT:
        case JSON_ARRAY:
                return NULL;
        }
        return NULL;
}

static bool strv_contains(const char *const *l, const char *s)
{
        for (; l && *l; l++)
                if (streq(*l, s))
                        return true;
        return false;
}

static bool array_of_scalars(const json_t *a)
{
        size_t i;
        const json_t *v;
        json_array_foreach (a, i, v)
                if (json_is_object(v) || json_is_array(v))
                        return false;
        return true;
}

/* Length of the UTF-8 sequence at s and its code point, or 0 when the
 * bytes are no valid UTF-8 (overlong forms and surrogates included). */
static size_t utf8_decode(const unsigned char *s, uint32_t *ret)
{
        size_t n;
        uint32_t c, min;

        if (s[0] < 0x80) {
                *ret = s[0];
                return 1;
        }
        if ((s[0] & 0xe0) == 0xc0)
                n = 2, c = s[0] & 0x1f, min = 0x80;
        else if ((s[0] & 0xf0) == 0xe0)
                n = 3, c = s[0] & 0x0f, min = 0x800;
        else if ((s[0] & 0xf8) == 0xf0)
                n = 4, c = s[0] & 0x07, min = 0x10000;
        else
                return 0;
        for (size_t i = 1; i < n; i++) {
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
                c = c << 6 | (s[i] & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
                return 0;
        *ret = c;
        return n;
}

void output_fputs_sanitized(const char *s, FILE *f)
{
        const unsigned char *p = (const unsigned char *)s;

        while (*p) {
                uint32_t c;
                size_t n = utf8_decode(p, &c);
                if (n == 0) {
                        /* a byte that is no text: shown, not passed to the terminal */
                        fprintf(f, "\\x%02x", *p);
                        p++;
                        continue;
                }
                if (c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0))
                        fputc('?', f);
                else
                        fwrite(p, 1, n, f);
                p += n;
        }
}

void output_fputs_escaped(const char *s, FILE *f)
{
        const unsigned char *p = (const unsigned char *)s;

        while (*p) {
                uint32_t c;
                size_t n = utf8_decode(p, &c);
                if (n == 0) {
                        fprintf(f, "\\x%02x", *p);
                        p++;
                        continue;
                }
                if (c >= 0x20 && c < 0x7f)
                        fputc((int)c, f);
                else if (c > 0xffff)
                        fprintf(f, "\\U%08" PRIx32, c);
                else
                        fprintf(f, "\\u%04" PRIx32, c);
                p += n;
        }
}

void output_print_fields(FILE *f, const json_t *object, const char *const *skip, unsigned indent,
                         unsigned label_width)
{
        const char *key;
        const json_t *v;
        char label[64];

        if (label_width == 0)
                json_object_foreach ((json_t *)object, key, v) {
                        if (!strv_contains(skip, key))
                                label_width = MAX(label_width, (unsigned)output_text_width(key));
                }

        json_object_foreach ((json_t *)object, key, v) {
                if (strv_contains(skip, key) || json_is_null(v))
                        continue;
                output_label(label, sizeof(label), key);
                if (json_is_array(v) && json_array_size(v) == 0)
                        continue;

                if (json_is_object(v) || (json_is_array(v) && !array_of_scalars(v))) {
                        fprintf(f, "%*s%*s:\n", (int)indent, "", (int)label_width, label);
                        if (json_is_object(v)) {
                                output_print_fields(f, v, NULL, indent + 2, 0);
                                continue;
                        }
                        size_t i;
                        const json_t *e;
                        json_array_foreach (v, i, e) {
                                if (json_is_object(e)) {
                                        output_print_fields(f, e, NULL, indent + 2, 0);
                                        if (i + 1 < json_array_size(v))
                                                fputc('\n', f);
                                } else {
                                        _cleanup_free_ char *s =
                                                json_dumps(e, JSON_COMPACT | JSON_ENCODE_ANY);
                                        fprintf(f, "%*s%s\n", (int)indent + 2, "", strempty(s));
                                }
                        }
                        continue;
                }

                fprintf(f, "%*s%*s: ", (int)indent, "", (int)label_width, label);
                if (json_is_array(v)) {
                        size_t i;
                        const json_t *e;
                        json_array_foreach (v, i, e) {
                                _cleanup_free_ char *s = output_scalar(e);
                                if (i > 0)
                                        fputs(", ", f);
                                output_fputs_sanitized(s ? s : "-", f);
                        }
                } else {
                        _cleanup_free_ char *s = output_scalar(v);
                        output_fputs_sanitized(s ? s : "-", f);
                }
                fputc('\n', f);
        }
}

const char *output_json_str(const json_t *o, const char *key)
{
        const char *s = json_string_value(json_object_get(o, key));
        return s && s[0] ? s : NULL;
}
