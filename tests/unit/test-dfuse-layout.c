/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdbool.h>

#include "codec/dfuse-layout.h"
#include "codec/usb-string.h"
#include "tests.h"
#include "util/macros.h"

#define F429 "@Internal Flash  /0x08000000/04*016Kg,01*064Kg,07*128Kg"
/* Seven UTF-16 garbage units after the last segment, as lsusb shows them. */
#define GARBAGE "\uCC50\u01A8\u2E54\uBEBF\u4B7C\uB6EE\uCEF8"

typedef struct Seg {
        uint32_t address, count, size;
        uint8_t flags;
} Seg;

typedef struct LayoutCase {
        const char *input;
        int ret;
        const char *name;
        bool truncated;
        size_t n_regions;
        uint32_t region_address[3];
        size_t n_segs_per_region[3];
        Seg segs[8]; /* all regions, in order */
        uint64_t total;
        const char *canonical; /* NULL: same as input */
} LayoutCase;

static const LayoutCase layout_cases[] = {
        /* STM32F446 (512 KiB) */
        { "@Internal Flash  /0x08000000/04*016Kg,01*064Kg,03*128Kg",
          0,
          "Internal Flash",
          false,
          1,
          { 0x08000000 },
          { 3 },
          { { 0x08000000, 4, 16384, 7 }, { 0x08010000, 1, 65536, 7 }, { 0x08020000, 3, 131072, 7 } },
          512 * 1024,
          NULL },
        /* STM32F429 (1 MiB) */
        { F429,
          0,
          "Internal Flash",
          false,
          1,
          { 0x08000000 },
          { 3 },
          { { 0x08000000, 4, 16384, 7 }, { 0x08010000, 1, 65536, 7 }, { 0x08020000, 7, 131072, 7 } },
          1024 * 1024,
          NULL },
        /* STM32H723 */
        { "@Internal Flash  /0x08000000/08*128Kg",
          0,
          "Internal Flash",
          false,
          1,
          { 0x08000000 },
          { 1 },
          { { 0x08000000, 8, 131072, 7 } },
          1024 * 1024,
          NULL },
        /* STM32G0B1: three spaces, three-digit count */
        { "@Internal Flash   /0x08000000/256*02Kg",
          0,
          "Internal Flash",
          false,
          1,
          { 0x08000000 },
          { 1 },
          { { 0x08000000, 256, 2048, 7 } },
          512 * 1024,
          "@Internal Flash  /0x08000000/256*002Kg" },
        /* Option bytes: size in bytes (space multiplier), type e = readable+writeable */
        { "@Option Bytes  /0x1FFFC000/01*016 e",
          0,
          "Option Bytes",
          false,
          1,
          { 0x1FFFC000 },
          { 1 },
          { { 0x1FFFC000, 1, 16, 5 } },
          16,
          NULL },
        /* F42x option bytes: two regions */
        { "@Option Bytes  /0x1FFFC000/01*016 e/0x1FFEC000/01*016 e",
          0,
          "Option Bytes",
          false,
          2,
          { 0x1FFFC000, 0x1FFEC000 },
          { 1, 1 },
          { { 0x1FFFC000, 1, 16, 5 }, { 0x1FFEC000, 1, 16, 5 } },
          32,
          NULL },
        /* OTP: read-only 'a' and a byte multiplier 'B' */
        { "@OTP Memory /0x1FFF7800/01*512 e,01*016 e",
          0,
          "OTP Memory",
          false,
          1,
          { 0x1FFF7800 },
          { 2 },
          { { 0x1FFF7800, 1, 512, 5 }, { 0x1FFF7A00, 1, 16, 5 } },
          528,
          "@OTP Memory  /0x1FFF7800/01*512 e,01*016 e" },
        { "@Device Feature/0xFFFF0000/01*004 g",
          0,
          "Device Feature",
          false,
          1,
          { 0xFFFF0000 },
          { 1 },
          { { 0xFFFF0000, 1, 4, 7 } },
          4,
          "@Device Feature  /0xFFFF0000/01*004 g" },
        /* Multi-region flash, B multiplier and read-only sectors */
        { "@Flash/0x08000000/02*016Ka,02*016Kg/0x08100000/01*001Mg/0x20000000/04*256Bb",
          0,
          "Flash",
          false,
          3,
          { 0x08000000, 0x08100000, 0x20000000 },
          { 2, 1, 1 },
          { { 0x08000000, 2, 16384, 1 },
            { 0x08008000, 2, 16384, 7 },
            { 0x08100000, 1, 1048576, 7 },
            { 0x20000000, 4, 256, 2 } },
          65536 + 1048576 + 1024,
          "@Flash  /0x08000000/02*016Ka,02*016Kg/0x08100000/01*001Mg/0x20000000/04*256 b" },
        /* Garbage tail: the whole F429 layout survives, flagged */
        { F429 GARBAGE,
          0,
          "Internal Flash",
          true,
          1,
          { 0x08000000 },
          { 3 },
          { { 0x08000000, 4, 16384, 7 }, { 0x08010000, 1, 65536, 7 }, { 0x08020000, 7, 131072, 7 } },
          1024 * 1024,
          F429 },
        /* Garbage directly glued to the type letter: "g" then a non-ASCII char */
        { "@Internal Flash  /0x08000000/04*016Kg,01*064Kg,07*128Kgxyz",
          0,
          "Internal Flash",
          true,
          1,
          { 0x08000000 },
          { 3 },
          { { 0x08000000, 4, 16384, 7 }, { 0x08010000, 1, 65536, 7 }, { 0x08020000, 7, 131072, 7 } },
          1024 * 1024,
          F429 },
        /* Short string cut inside the third segment: two groups kept */
        { "@Internal Flash  /0x08000000/04*016Kg,01*064Kg,07*12",
          0,
          "Internal Flash",
          true,
          1,
          { 0x08000000 },
          { 2 },
          { { 0x08000000, 4, 16384, 7 }, { 0x08010000, 1, 65536, 7 } },
          128 * 1024,
          "@Internal Flash  /0x08000000/04*016Kg,01*064Kg" },
        /* Cut right after a separator */
        { "@Internal Flash  /0x08000000/04*016Kg,",
          0,
          "Internal Flash",
          true,
          1,
          { 0x08000000 },
          { 1 },
          { { 0x08000000, 4, 16384, 7 } },
          64 * 1024,
          "@Internal Flash  /0x08000000/04*016Kg" },
        /* Second region broken: the first is kept */
        { "@Flash/0x08000000/02*016Kg/0x0810",
          0,
          "Flash",
          true,
          1,
          { 0x08000000 },
          { 1 },
          { { 0x08000000, 2, 16384, 7 } },
          32768,
          "@Flash  /0x08000000/02*016Kg" },
        /* Trailing NUL padding and white space are not a defect */
        { "@Internal Flash  /0x08000000/08*128Kg  ",
          0,
          "Internal Flash",
          false,
          1,
          { 0x08000000 },
          { 1 },
          { { 0x08000000, 8, 131072, 7 } },
          1024 * 1024,
          "@Internal Flash  /0x08000000/08*128Kg" },
        /* Invalid type letter 'h' ends the layout */
        { "@Flash/0x08000000/02*016Kg,01*064Kh",
          0,
          "Flash",
          true,
          1,
          { 0x08000000 },
          { 1 },
          { { 0x08000000, 2, 16384, 7 } },
          32768,
          "@Flash  /0x08000000/02*016Kg" },
        /* Lower-case multiplier is not in the grammar */
        { "@Flash/0x08000000/02*016kg", -EBADMSG },
        /* Segments that wrap the 32-bit address space */
        { "@Flash/0xFFFF0000/02*064Kg", -EBADMSG },
        { "@Flash/0xF0000000/01*256Mg",
          0,
          "Flash",
          false,
          1,
          { 0xF0000000 },
          { 1 },
          { { 0xF0000000, 1, 268435456, 7 } },
          268435456,
          "@Flash  /0xF0000000/01*256Mg" },
        /* Zero counts and sizes describe no memory */
        { "@Flash/0x08000000/00*016Kg", -EBADMSG },
        { "@Flash/0x08000000/01*000Kg", -EBADMSG },
        /* Overlong numbers */
        { "@Flash/0x080000000/01*016Kg", -EBADMSG },
        { "@Flash/0x08000000/99999999999*016Kg", -EBADMSG },
        { "", -EBADMSG },
        { "@", -EBADMSG },
        { "@Internal Flash", -EBADMSG },
        { "@Internal Flash  /0x08000000/", -EBADMSG },
        { "Internal Flash  /0x08000000/04*016Kg", -EBADMSG },
        { "@Internal Flash  /08000000/04*016Kg", -EBADMSG },
        { "@Internal Flash  /0x/04*016Kg", -EBADMSG },
        { "@Internal Flash  /0x08000000/04*016K", -EBADMSG },
        { "@Internal Flash  /0x08000000/04*016", -EBADMSG },
        { "@Internal Flash  /0x08000000/*016Kg", -EBADMSG },
};

static void test_layout_cases(void)
{
        for (size_t i = 0; i < ELEMENTSOF(layout_cases); i++) {
                const LayoutCase *c = &layout_cases[i];
                DfuseLayout *l = NULL;
                size_t k = 0;
                int r;

                fprintf(stderr, "case %zu: %s\n", i, c->input);
                r = dfuse_layout_parse(c->input, strlen(c->input), &l);
                CHECK_INT(r, c->ret);
                if (r < 0) {
                        CHECK(!l);
                        continue;
                }
                CHECK_STR(l->name, c->name);
                CHECK_INT(l->truncated, c->truncated);
                CHECK_INT(!!l->diagnostic, c->truncated);
                CHECK_INT(l->n_regions, c->n_regions);
                CHECK_INT(dfuse_layout_total_size(l), c->total);
                for (size_t j = 0; j < MIN(l->n_regions, c->n_regions); j++) {
                        CHECK_INT(l->regions[j].address, c->region_address[j]);
                        CHECK_INT(l->regions[j].n_segments, c->n_segs_per_region[j]);
                        for (size_t m = 0; m < MIN(l->regions[j].n_segments, c->n_segs_per_region[j]);
                             m++, k++) {
                                const DfuseSegment *s = &l->regions[j].segments[m];
                                CHECK_INT(s->address, c->segs[k].address);
                                CHECK_INT(s->count, c->segs[k].count);
                                CHECK_INT(s->size, c->segs[k].size);
                                CHECK_INT(s->flags, c->segs[k].flags);
                        }
                }

                _cleanup_free_ char *str = dfuse_layout_to_string(l);
                CHECK_STR(str, c->canonical ?: c->input);

                /* A copy is the same layout, diagnostics included. */
                DfuseLayout *copy = NULL;
                CHECK_INT(dfuse_layout_copy(l, &copy), 0);
                if (copy) {
                        _cleanup_free_ char *str_copy = dfuse_layout_to_string(copy);
                        CHECK_STR(str_copy, str);
                        CHECK_INT(copy->truncated, l->truncated);
                        CHECK_INT(!!copy->diagnostic, !!l->diagnostic);
                        CHECK_INT(dfuse_layout_total_size(copy), c->total);
                }
                dfuse_layout_free(copy);

                /* The canonical form parses back to the same layout. */
                DfuseLayout *again = NULL;
                CHECK_INT(dfuse_layout_parse(str, strlen(str), &again), 0);
                if (again) {
                        CHECK(!again->truncated);
                        CHECK_INT(dfuse_layout_total_size(again), c->total);
                        _cleanup_free_ char *str2 = dfuse_layout_to_string(again);
                        CHECK_STR(str2, str);
                }
                dfuse_layout_free(again);
                dfuse_layout_free(l);
        }
}

static void test_diagnostic(void)
{
        DfuseLayout *l = NULL;
        const char *s = F429 GARBAGE;

        CHECK_INT(dfuse_layout_parse(s, strlen(s), &l), 0);
        CHECK(l && l->diagnostic);
        if (l && l->diagnostic) {
                fprintf(stderr, "diagnostic: %s\n", l->diagnostic);
                CHECK(strstr(l->diagnostic, "offset 55"));
                CHECK(strstr(l->diagnostic, "dropped 20 byte(s)"));
                CHECK(strstr(l->diagnostic, "\\xec\\xb1\\x90"));
                CHECK(strstr(l->diagnostic, "kept 3 complete"));
        }
        dfuse_layout_free(l);

        /* Length, not NUL, bounds the input: an embedded NUL ends it. */
        static const char nul[] = "@Flash/0x08000000/02*016Kg\0garbage";
        CHECK_INT(dfuse_layout_parse(nul, sizeof(nul) - 1, &l), 0);
        CHECK(l && l->truncated);
        dfuse_layout_free(l);
        CHECK_INT(dfuse_layout_parse(nul, 26, &l), 0);
        CHECK(l && !l->truncated);
        dfuse_layout_free(l);

        CHECK_INT(dfuse_layout_parse(NULL, 0, &l), -EBADMSG);
        CHECK(dfuse_layout_free(NULL) == NULL);
        CHECK_INT(dfuse_layout_total_size(NULL), 0);
}

typedef struct SectorCase {
        uint32_t address;
        bool found;
        uint32_t start, size;
} SectorCase;

static void test_find_sector(void)
{
        static const SectorCase cases[] = {
                { 0x08000000, true, 0x08000000, 16384 },
                { 0x08003FFF, true, 0x08000000, 16384 },
                { 0x08004000, true, 0x08004000, 16384 },
                { 0x08008000, true, 0x08008000, 16384 },
                { 0x0800C123, true, 0x0800C000, 16384 },
                { 0x08010000, true, 0x08010000, 65536 },
                { 0x0801FFFF, true, 0x08010000, 65536 },
                { 0x08020000, true, 0x08020000, 131072 },
                { 0x080FFFFF, true, 0x080E0000, 131072 },
                { 0x08100000, false },
                { 0x07FFFFFF, false },
                { 0, false },
                { 0xFFFFFFFF, false },
        };
        DfuseLayout *l = NULL;

        CHECK_INT(dfuse_layout_parse(F429, strlen(F429), &l), 0);
        for (size_t i = 0; l && i < ELEMENTSOF(cases); i++) {
                const DfuseSegment *seg = NULL;
                uint32_t start = 0, size = 0;
                bool found = dfuse_layout_find_sector(l, cases[i].address, &seg, &start, &size);

                CHECK_INT(found, cases[i].found);
                if (found && cases[i].found) {
                        CHECK_INT(start, cases[i].start);
                        CHECK_INT(size, cases[i].size);
                        CHECK(seg && seg->size == size);
                }
        }
        dfuse_layout_free(l);
}

/* The F42x ROM defect end to end: raw descriptor -> UTF-8 -> layout. */
static void test_f42x_descriptor(void)
{
        uint8_t buf[166] = { 166, 0x03 };
        const char *s = F429;
        size_t n = strlen(s);
        char *utf8 = NULL;
        bool patched = false;
        DfuseLayout *l = NULL;

        for (size_t i = 0; i < n; i++) {
                buf[2 + 2 * i] = (uint8_t)s[i];
                buf[3 + 2 * i] = 0;
        }
        /* 55 characters: exactly 112 bytes arrive although bLength says 166. */
        CHECK_INT(2 + 2 * n, 112);
        CHECK_INT(usb_string_descriptor_decode(buf, 112, &utf8, &patched), 0);
        CHECK(patched);
        CHECK_STR(utf8, F429);
        CHECK_INT(dfuse_layout_parse(utf8, strlen(utf8), &l), 0);
        CHECK(l && !l->truncated && dfuse_layout_total_size(l) == 1024 * 1024);
        dfuse_layout_free(l);
        free(utf8);
}

int main(void)
{
        test_layout_cases();
        test_diagnostic();
        test_find_sector();
        test_f42x_descriptor();
        TESTS_EXIT();
}
