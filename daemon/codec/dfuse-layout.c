/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * DfuSe memory layout strings, as described in UM0424 ("DfuSe interface
 * string") and used by dfu-util:
 *
 *   layout  = "@" name "/" region ( "/" region )*
 *   region  = "0x" hex "/" segment ( "," segment )*
 *   segment = count "*" size multiplier type
 *   multiplier = "B" | "K" | "M" | " "          (space: bytes)
 *   type    = "a" .. "g"  (low three bits: readable, erasable, writeable)
 *
 * The parser is a hand-written scanner over bytes. It never guesses: the
 * first byte that does not fit the grammar ends the layout, every complete
 * segment read so far is kept, and the rest is reported in `diagnostic`.
 * Trailing white space and NUL padding are not a defect.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/codec-util.h"
#include "codec/dfuse-layout.h"
#include "util/macros.h"

/* Enough for any real sector count or size; keeps the arithmetic in 64 bits. */
#define DFUSE_MAX_DIGITS 10

typedef struct Scanner {
        const char *s;
        size_t len;
        size_t pos;
} Scanner;

static int scanner_peek(const Scanner *sc)
{
        return sc->pos < sc->len ? (unsigned char)sc->s[sc->pos] : -1;
}

static bool scanner_accept(Scanner *sc, char c)
{
        if (scanner_peek(sc) != (unsigned char)c)
                return false;
        sc->pos++;
        return true;
}

static bool scanner_decimal(Scanner *sc, uint64_t *ret)
{
        uint64_t v = 0;
        size_t n = 0;

        while (sc->pos < sc->len && sc->s[sc->pos] >= '0' && sc->s[sc->pos] <= '9') {
                if (n >= DFUSE_MAX_DIGITS)
                        return false;
                v = v * 10 + (uint64_t)(sc->s[sc->pos] - '0');
                sc->pos++;
                n++;
        }
        if (n == 0)
                return false;
        *ret = v;
        return true;
}

/* "0x" followed by 1..8 hex digits. */
static bool scanner_address(Scanner *sc, uint32_t *ret)
{
        uint32_t v = 0;
        size_t n = 0;
        int d;

        if (!scanner_accept(sc, '0'))
                return false;
        if (!scanner_accept(sc, 'x') && !scanner_accept(sc, 'X'))
                return false;
        while ((d = codec_unhex(scanner_peek(sc))) >= 0) {
                if (n >= 8)
                        return false;
                v = (v << 4) | (uint32_t)d;
                sc->pos++;
                n++;
        }
        if (n == 0)
                return false;
        *ret = v;
        return true;
}

/* One segment; on success the scanner stands after the type letter. */
static bool scanner_segment(Scanner *sc, uint32_t address, DfuseSegment *ret)
{
        uint64_t count, size, mult;
        int c;

        if (!scanner_decimal(sc, &count) || !scanner_accept(sc, '*') || !scanner_decimal(sc, &size))
                return false;

        c = scanner_peek(sc);
        switch (c) {
        case 'B':
        case ' ':
                mult = 1;
                break;
        case 'K':
                mult = 1024;
                break;
        case 'M':
                mult = 1024 * 1024;
                break;
        default:
                return false;
        }
        sc->pos++;

        c = scanner_peek(sc);
        if (c < 'a' || c > 'g')
                return false;
        sc->pos++;

        size *= mult;
        /* A group must describe real memory inside the 32-bit address space. */
        if (count == 0 || size == 0 || size > UINT32_MAX || count > UINT32_MAX)
                return false;
        if ((uint64_t)address + count * size > (uint64_t)UINT32_MAX + 1)
                return false;

        *ret = (DfuseSegment){
                .address = address,
                .count = (uint32_t)count,
                .size = (uint32_t)size,
                .flags = (uint8_t)(c & 7),
        };
        return true;
}

static int region_append(DfuseRegion *r, const DfuseSegment *seg)
{
        DfuseSegment *n = reallocarray(r->segments, r->n_segments + 1, sizeof(*n));
        if (!n)
                return -ENOMEM;
        r->segments = n;
        r->segments[r->n_segments++] = *seg;
        return 0;
}

static int layout_append_region(DfuseLayout *l, DfuseRegion *r)
{
        DfuseRegion *n = reallocarray(l->regions, l->n_regions + 1, sizeof(*n));
        if (!n)
                return -ENOMEM;
        l->regions = n;
        l->regions[l->n_regions++] = *r;
        *r = (DfuseRegion){};
        return 0;
}

/* Printable rendering of dropped input: ASCII as is, anything else \xNN. */
static void escape_bytes(const char *s, size_t len, char *buf, size_t bufsz)
{
        size_t o = 0;

        for (size_t i = 0; i < len && o + 5 < bufsz; i++) {
                unsigned char c = (unsigned char)s[i];
                if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
                        buf[o++] = (char)c;
                else
                        o += (size_t)snprintf(buf + o, bufsz - o, "\\x%02x", c);
        }
        if (bufsz > 0)
                buf[MIN(o, bufsz - 1)] = 0;
}

static int layout_set_diagnostic(DfuseLayout *l, const Scanner *sc, size_t good_end, size_t n_segments)
{
        char shown[4 * 24 + 1];
        size_t dropped = sc->len - good_end;
        int r;

        escape_bytes(sc->s + good_end, MIN(dropped, (size_t)24), shown, sizeof(shown));
        r = asprintf(&l->diagnostic,
                     "layout string does not fit the DfuSe grammar after offset %zu: dropped %zu byte(s) "
                     "\"%s%s\", kept %zu complete segment group(s)",
                     good_end, dropped, shown, dropped > 24 ? "..." : "", n_segments);
        if (r < 0) {
                l->diagnostic = NULL;
                return -ENOMEM;
        }
        return 0;
}

static bool is_trailing_padding(const char *s, size_t len)
{
        for (size_t i = 0; i < len; i++)
                if (s[i] != ' ' && s[i] != '\0' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
                        return false;
        return true;
}

DfuseLayout *dfuse_layout_free(DfuseLayout *l)
{
        if (!l)
                return NULL;
        for (size_t i = 0; i < l->n_regions; i++)
                free(l->regions[i].segments);
        free(l->regions);
        free(l->name);
        free(l->diagnostic);
        free(l);
        return NULL;
}

int dfuse_layout_copy(const DfuseLayout *l, DfuseLayout **ret)
{
        _cleanup_(dfuse_layout_freep) DfuseLayout *c = calloc(1, sizeof(DfuseLayout));

        if (!c)
                return -ENOMEM;
        c->truncated = l->truncated;
        if ((l->name && !(c->name = strdup(l->name))) ||
            (l->diagnostic && !(c->diagnostic = strdup(l->diagnostic))))
                return -ENOMEM;
        if (l->n_regions > 0) {
                c->regions = calloc(l->n_regions, sizeof(DfuseRegion));
                if (!c->regions)
                        return -ENOMEM;
        }
        for (size_t i = 0; i < l->n_regions; i++, c->n_regions++) {
                const DfuseRegion *r = &l->regions[i];
                c->regions[i].address = r->address;
                if (r->n_segments == 0)
                        continue;
                c->regions[i].segments = malloc(r->n_segments * sizeof(DfuseSegment));
                if (!c->regions[i].segments)
                        return -ENOMEM;
                memcpy(c->regions[i].segments, r->segments, r->n_segments * sizeof(DfuseSegment));
                c->regions[i].n_segments = r->n_segments;
        }
        *ret = TAKE_PTR(c);
        return 0;
}

static void dfuse_region_clear(DfuseRegion *r)
{
        free(r->segments);
        *r = (DfuseRegion){};
}

int dfuse_layout_parse(const char *s, size_t len, DfuseLayout **ret)
{
        _cleanup_(dfuse_layout_freep) DfuseLayout *l = NULL;
        _cleanup_(dfuse_region_clear) DfuseRegion region = {};
        Scanner sc = { .s = s, .len = s ? len : 0 };
        size_t good_end = 0, n_segments = 0, name_start, name_end;
        int r;

        if (!ret)
                return -EINVAL;

        l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;

        if (!scanner_accept(&sc, '@'))
                return -EBADMSG;
        name_start = sc.pos;
        while (sc.pos < sc.len && sc.s[sc.pos] != '/' && sc.s[sc.pos] != '\0')
                sc.pos++;
        name_end = sc.pos;
        while (name_start < name_end && sc.s[name_start] == ' ')
                name_start++;
        while (name_end > name_start && sc.s[name_end - 1] == ' ')
                name_end--;
        l->name = strndup(sc.s + name_start, name_end - name_start);
        if (!l->name)
                return -ENOMEM;

        /* Regions: "/0xADDR/" followed by segments, until something does not fit. */
        while (scanner_accept(&sc, '/')) {
                uint32_t address;

                if (!scanner_address(&sc, &region.address) || !scanner_accept(&sc, '/'))
                        break;
                address = region.address;
                for (;;) {
                        DfuseSegment seg;

                        if (!scanner_segment(&sc, address, &seg))
                                break;
                        r = region_append(&region, &seg);
                        if (r < 0)
                                return r;
                        n_segments++;
                        good_end = sc.pos;
                        address = (uint32_t)((uint64_t)seg.address + (uint64_t)seg.count * seg.size);
                        if (!scanner_accept(&sc, ','))
                                break;
                }
                if (region.n_segments > 0) {
                        r = layout_append_region(l, &region);
                        if (r < 0)
                                return r;
                }
                /* Only "/" (another region) may follow a complete segment. */
                if (sc.pos != good_end)
                        break;
        }

        if (n_segments == 0)
                return -EBADMSG;

        if (!is_trailing_padding(sc.s + good_end, sc.len - good_end)) {
                l->truncated = true;
                r = layout_set_diagnostic(l, &sc, good_end, n_segments);
                if (r < 0)
                        return r;
        }

        *ret = TAKE_PTR(l);
        return 0;
}

uint64_t dfuse_layout_total_size(const DfuseLayout *l)
{
        uint64_t total = 0;

        if (!l)
                return 0;
        for (size_t i = 0; i < l->n_regions; i++)
                for (size_t j = 0; j < l->regions[i].n_segments; j++)
                        total += (uint64_t)l->regions[i].segments[j].count * l->regions[i].segments[j].size;
        return total;
}

bool dfuse_layout_find_sector(const DfuseLayout *l, uint32_t address, const DfuseSegment **ret_segment,
                              uint32_t *ret_sector_start, uint32_t *ret_sector_size)
{
        if (!l)
                return false;
        for (size_t i = 0; i < l->n_regions; i++)
                for (size_t j = 0; j < l->regions[i].n_segments; j++) {
                        const DfuseSegment *seg = &l->regions[i].segments[j];
                        uint64_t end = (uint64_t)seg->address + (uint64_t)seg->count * seg->size;

                        if (address < seg->address || address >= end)
                                continue;
                        if (ret_segment)
                                *ret_segment = seg;
                        if (ret_sector_start)
                                *ret_sector_start =
                                        seg->address + (address - seg->address) / seg->size * seg->size;
                        if (ret_sector_size)
                                *ret_sector_size = seg->size;
                        return true;
                }
        return false;
}

char *dfuse_layout_to_string(const DfuseLayout *l)
{
        _cleanup_free_ char *buf = NULL;
        size_t size = 0;
        FILE *f;

        if (!l)
                return NULL;
        f = open_memstream(&buf, &size);
        if (!f)
                return NULL;

        fprintf(f, "@%s  ", strempty(l->name));
        for (size_t i = 0; i < l->n_regions; i++) {
                const DfuseRegion *region = &l->regions[i];

                fprintf(f, "/0x%08" PRIX32 "/", region->address);
                for (size_t j = 0; j < region->n_segments; j++) {
                        const DfuseSegment *seg = &region->segments[j];
                        uint32_t size_shown = seg->size;
                        char mult = ' ';

                        if (seg->size % (1024 * 1024) == 0) {
                                size_shown = seg->size / (1024 * 1024);
                                mult = 'M';
                        } else if (seg->size % 1024 == 0) {
                                size_shown = seg->size / 1024;
                                mult = 'K';
                        }
                        fprintf(f, "%s%02" PRIu32 "*%03" PRIu32 "%c%c", j > 0 ? "," : "", seg->count,
                                size_shown, mult, (char)(0x60 | (seg->flags & 7)));
                }
        }
        if (fclose(f) != 0)
                return NULL;
        return TAKE_PTR(buf);
}
