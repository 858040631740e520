/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>

#include "flash-model.h"
#include "util/macros.h"
#include "../unit/tests.h"

/* F446-like start: 4 x 16 KiB, 1 x 64 KiB at 0x08000000, plus 16 bytes of
 * flash without a sector (not erasable). */
static const FlashSector sectors[] = {
        { 0x08000000, 0x4000 }, { 0x08004000, 0x4000 },  { 0x08008000, 0x4000 },
        { 0x0800C000, 0x4000 }, { 0x08010000, 0x10000 },
};
#define BASE 0x08000000u
#define SIZE 0x20010u

typedef enum Op { ERASE, MASS, PROGRAM, READ, LOAD } Op;

static void test_sequence(void)
{
        static const struct {
                Op op;
                uint32_t addr;
                const char *data; /* program/load bytes, or expected read bytes */
                int expected;     /* return value */
        } steps[] = {
                { READ, BASE, "\xff\xff\xff\xff", 0 },
                { PROGRAM, BASE, "\x12\x34", 0 },
                { READ, BASE, "\x12\x34\xff", 0 },
                /* clearing more bits of a programmed byte: not erased -> error, AND stored */
                { PROGRAM, BASE, "\x02", -EIO },
                { READ, BASE, "\x02\x34", 0 },
                /* writing the same value again is harmless */
                { PROGRAM, BASE + 1, "\x34", 0 },
                /* setting bits cannot work: error, value keeps its zeros */
                { PROGRAM, BASE + 1, "\xff", -EIO },
                { PROGRAM, BASE + 1, "\xcf", -EIO },
                { READ, BASE + 1, "\x04", 0 },
                /* erase anywhere in the sector clears the whole sector */
                { ERASE, BASE + 0x3FFF, NULL, 0x4000 },
                { READ, BASE, "\xff\xff", 0 },
                { PROGRAM, BASE + 0x4000, "\x00", 0 },
                { ERASE, BASE + 0x3000, NULL, 0x4000 },
                { READ, BASE + 0x4000, "\x00", 0 },
                { ERASE, BASE + 0x10000, NULL, 0x10000 },
                /* outside the flash, or flash without a sector */
                { ERASE, BASE - 1, NULL, -ERANGE },
                { ERASE, BASE + 0x20000, NULL, -ENOENT },
                { ERASE, BASE + SIZE, NULL, -ERANGE },
                { PROGRAM, BASE + SIZE - 1, "\x11\x11", -ERANGE },
                { READ, BASE + SIZE - 1, "\xff\xff", -ERANGE },
                { PROGRAM, BASE + SIZE - 1, "\x00", 0 },
                /* raw preload ignores NOR rules */
                { LOAD, BASE + 0x4000, "\xaa", 0 },
                { READ, BASE + 0x4000, "\xaa", 0 },
                { MASS, 0, NULL, 0 },
                { READ, BASE + 0x4000, "\xff", 0 },
                /* mass erase leaves the part without sectors alone */
                { READ, BASE + SIZE - 1, "\x00", 0 },
        };
        FlashModel *f;

        CHECK_INT(flash_model_new(&f, BASE, SIZE, true, sectors, ELEMENTSOF(sectors)), 0);
        for (size_t i = 0; i < ELEMENTSOF(steps); i++) {
                size_t n = steps[i].data ? strlen(steps[i].data) : 0;
                uint8_t buf[16];
                int r = 0;

                if (steps[i].data && n == 0)
                        n = 1; /* "\x00" */
                switch (steps[i].op) {
                case ERASE:
                        r = flash_model_erase_sector(f, steps[i].addr);
                        break;
                case MASS:
                        r = flash_model_mass_erase(f);
                        break;
                case PROGRAM:
                        r = flash_model_program(f, steps[i].addr, (const uint8_t *)steps[i].data, n);
                        break;
                case LOAD:
                        r = flash_model_load(f, steps[i].addr, (const uint8_t *)steps[i].data, n);
                        break;
                case READ:
                        r = flash_model_read(f, steps[i].addr, buf, n);
                        if (r == 0 && memcmp(buf, steps[i].data, n) != 0) {
                                fprintf(stderr, "step %zu: read mismatch\n", i);
                                tests_failed++;
                        }
                        break;
                }
                if (r != steps[i].expected) {
                        fprintf(stderr, "step %zu: got %d, expected %d\n", i, r, steps[i].expected);
                        tests_failed++;
                }
        }
        CHECK_INT(f->sector_erases, 3);
        CHECK_INT(f->mass_erases, 1);
        CHECK_INT(f->erases_per_sector[0], 3);
        CHECK_INT(f->erases_per_sector[4], 2);
        CHECK_INT(f->program_errors, 3);
        flash_model_free(f);
}

static void test_invalid(void)
{
        static const struct {
                FlashSector s[2];
                size_t n;
                int expected;
        } cases[] = {
                { { { BASE, 0x4000 } }, 1, 0 },
                { { { BASE - 1, 0x4000 } }, 1, -EINVAL },
                { { { BASE, 0x40000 } }, 1, -EINVAL },
                { { { BASE, 0x4000 }, { BASE + 0x2000, 0x4000 } }, 2, -EINVAL },
                { { { BASE, 0 } }, 1, -EINVAL },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                FlashModel *f = NULL;
                CHECK_INT(flash_model_new(&f, BASE, SIZE, true, cases[i].s, cases[i].n), cases[i].expected);
                flash_model_free(f);
        }
}

static void test_overwrite(void)
{
        /* option bytes: plain overwrite */
        static const FlashSector ob[] = { { 0x1FFFC000, 16 } };
        FlashModel *f;
        uint8_t b;

        CHECK_INT(flash_model_new(&f, 0x1FFFC000, 16, false, ob, 1), 0);
        CHECK_INT(flash_model_program(f, 0x1FFFC000, (const uint8_t *)"\x00", 1), 0);
        CHECK_INT(flash_model_program(f, 0x1FFFC000, (const uint8_t *)"\xaa", 1), 0);
        CHECK_INT(flash_model_read(f, 0x1FFFC000, &b, 1), 0);
        CHECK_INT(b, 0xaa);
        flash_model_free(f);
}

int main(void)
{
        test_sequence();
        test_invalid();
        test_overwrite();
        TESTS_EXIT();
}
