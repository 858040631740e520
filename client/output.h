/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Presentation helpers for flashctl: sizes, addresses, sector permissions,
 * layout summaries, colors and tables sized to the terminal. Everything here
 * formats values taken from the daemon's JSON; nothing talks to the socket,
 * so the unit tests drive it with tables of inputs.
 */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Long enough for every string the format_* helpers produce. */
#define FORMAT_BUF_MAX 32

/* "512 B", "16 KiB", "1.5 MiB", "1 GiB": exact values without decimals. */
const char *format_size(char buf[static FORMAT_BUF_MAX], uint64_t bytes);
/* The DfuSe notation used in layout summaries: "16K", "128K", "1M", "512". */
const char *format_size_short(char buf[static FORMAT_BUF_MAX], uint64_t bytes);
/* "0x08000000": at least eight hex digits, as in datasheets and dfu-util. */
const char *format_address(char buf[static FORMAT_BUF_MAX], uint64_t address);
/* "3d 4h", "2h 5min", "42s", "0s": two units at most. */
const char *format_duration(char buf[static FORMAT_BUF_MAX], uint64_t seconds);
/* Sector flags (1 readable, 2 erasable, 4 writeable) as "rew", "r--", "---". */
const char *format_flags(char buf[static FORMAT_BUF_MAX], unsigned flags);

/*
 * A layout (the JSON array [{"name","address","sectors":[{"count","size",
 * "flags"}]}]) in one line: "4x16K 1x64K 7x128K"; several regions are
 * joined with " + ". Returns 0 and a malloc'd string ("" for an empty,
 * null or missing layout), -EBADMSG when the JSON does not have that shape.
 */
int layout_summary(const json_t *layout, char **ret);

/* Color only on a terminal, and never with NO_COLOR set or TERM=dumb. */
bool output_use_color(FILE *f);
/* Columns of the terminal behind f ($COLUMNS wins); 0 when f is no tty (no limit). */
unsigned output_terminal_width(FILE *f);

typedef enum OutputColor {
        OUTPUT_COLOR_NONE,
        OUTPUT_COLOR_BOLD,
        OUTPUT_COLOR_GREEN,
        OUTPUT_COLOR_YELLOW,
        OUTPUT_COLOR_RED,
        OUTPUT_COLOR_BLUE,
        OUTPUT_COLOR_GREY,
        _OUTPUT_COLOR_MAX,
} OutputColor;

/* ANSI sequence to start the color, and the reset; "" when color is off. */
const char *output_color_on(OutputColor c, bool use_color);
const char *output_color_off(bool use_color);

/* Display width of UTF-8 text, one column per code point (our data is
 * port paths, board names and USB strings; no wide characters expected). */
size_t output_text_width(const char *s);

/*
 * A table with a header line, columns as wide as their widest cell. When it
 * does not fit `width` (0: unlimited), the widest shrinkable columns are cut
 * with "…" until it does, never below a few characters.
 */
typedef struct Table Table;

int table_new(Table **ret, size_t n_columns, const char *const *headers);
Table *table_free(Table *t);
/* Column may be cut to fit the terminal (default: yes, except the first). */
void table_set_shrinkable(Table *t, size_t column, bool shrinkable);
/* n_columns cells, NULL printed as "-"; copied. */
int table_add_row(Table *t, const char *const *cells);
/* Color of one cell of the last added row. */
void table_set_last_row_color(Table *t, size_t column, OutputColor color);
size_t table_rows(const Table *t);
int table_print(const Table *t, FILE *f, unsigned width, bool use_color, bool legend);

/*
 * Print the members of a JSON object as "Label: value" lines for a person
 * ("board_variant" -> "Board variant"), indented by `indent`; arrays of
 * scalars are joined with ", ", nested objects and arrays of objects are
 * printed below their label. Members named in `skip` (NULL-terminated, may
 * be NULL) are left out. Labels are right-aligned to `label_width`
 * (0: to the longest label).
 */
void output_print_fields(FILE *f, const json_t *object, const char *const *skip, unsigned indent,
                         unsigned label_width);
/* fputs() with control characters shown as '?': strings from a device (USB
 * descriptors, layout strings) must not drive the terminal. */
void output_fputs_sanitized(const char *s, FILE *f);
/* fputs() of a string that should be printable ASCII (a DfuSe layout
 * string): anything else is escaped (\u00e9 for a character, \xff for a
 * byte that is no UTF-8), so garbage a bootloader sends after the layout
 * shows as what it is. */
void output_fputs_escaped(const char *s, FILE *f);
/* "board_variant" -> "Board variant", into buf. */
const char *output_label(char *buf, size_t size, const char *key);
/* A scalar as text ("yes"/"no" for booleans); NULL for arrays, objects and null. malloc'd. */
char *output_scalar(const json_t *v);

/* A non-empty string member of a JSON object, or NULL. */
const char *output_json_str(const json_t *o, const char *key);
