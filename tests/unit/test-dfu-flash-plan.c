/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Sector planning for skip-unchanged DfuSe flashing (daemon/usb/flash-plan.c). */
#include <errno.h>
#include <stdio.h>

#include "codec/dfuse-layout.h"
#include "util/macros.h"
#include "tests.h"
#include "usb/flash-plan.h"

#define F429 "@Internal Flash  /0x08000000/04*016Kg,01*064Kg,07*128Kg"
/* sector 0 read-only (a), like a protected bootloader */
#define RO0        "@Internal Flash  /0x08000000/01*016Ka,03*016Kg"
#define BASE       0x08000000u
#define FLASH_SIZE (1024u * 1024u)

typedef enum Current {
        CUR_BLANK,    /* all 0xFF */
        CUR_IMAGE,    /* exactly what flashing leaves: image over 0xFF */
        CUR_ZERO,     /* all 0x00 (an old image everywhere) */
        CUR_IMAGE_OLD /* image, but old content (0x00) in the touched sectors' gaps */
} Current;

typedef struct Seg {
        uint32_t address;
        uint32_t len;
} Seg;

static uint8_t image_byte(uint32_t address)
{
        return (uint8_t)(address * 7 + 3);
}

static void describe(const FlashPlan *p, char *buf, size_t size)
{
        size_t pos = 0;

        buf[0] = 0;
        for (size_t i = 0; i < p->n_sectors; i++)
                pos += (size_t)snprintf(buf + pos, size - pos, "%s%08x/%u/%u=%s", i ? " " : "",
                                        p->sectors[i].address, p->sectors[i].size / 1024,
                                        p->sectors[i].covered,
                                        flash_sector_action_to_string(p->sectors[i].action));
}

static void test_plan(void)
{
        static const struct {
                const char *layout;
                Seg segs[3];
                size_t n;
                Current current;
                uint32_t poke; /* flip one byte of the current content (0: none) */
                int ret;
                const char *expected;
        } cases[] = {
                /* a small image in the 32 KiB-bootloader slot touches one sector */
                { F429, { { 0x08008000, 300 } }, 1, CUR_BLANK, 0, 0, "08008000/16/300=blank" },
                { F429, { { 0x08008000, 300 } }, 1, CUR_ZERO, 0, 0, "08008000/16/300=changed" },
                /* identical reflash: nothing to do */
                { F429, { { 0x08008000, 300 } }, 1, CUR_IMAGE, 0, 0, "08008000/16/300=unchanged" },
                /* across the 16K/16K/64K boundaries */
                { F429,
                  { { 0x08008000, 40 * 1024 } },
                  1,
                  CUR_IMAGE,
                  0,
                  0,
                  "08008000/16/16384=unchanged 0800c000/16/16384=unchanged 08010000/64/8192=unchanged" },
                /* a small change near the end touches exactly one sector */
                { F429,
                  { { 0x08008000, 40 * 1024 } },
                  1,
                  CUR_IMAGE,
                  0x08011ff0,
                  0,
                  "08008000/16/16384=unchanged 0800c000/16/16384=unchanged 08010000/64/8192=changed" },
                /* a change in the first sector only */
                { F429,
                  { { 0x08008000, 40 * 1024 } },
                  1,
                  CUR_IMAGE,
                  0x08008000,
                  0,
                  "08008000/16/16384=changed 0800c000/16/16384=unchanged 08010000/64/8192=unchanged" },
                /* a difference in the gap after the image end: flashing would turn it
                 * into 0xFF, so the sector is not skippable */
                { F429,
                  { { 0x08008000, 40 * 1024 } },
                  1,
                  CUR_IMAGE_OLD,
                  0,
                  0,
                  "08008000/16/16384=unchanged 0800c000/16/16384=unchanged 08010000/64/8192=changed" },
                { F429,
                  { { 0x08008000, 40 * 1024 } },
                  1,
                  CUR_IMAGE,
                  0x0801fff0,
                  0,
                  "08008000/16/16384=unchanged 0800c000/16/16384=unchanged 08010000/64/8192=changed" },
                /* a byte outside every touched sector does not matter */
                { F429, { { 0x08008000, 300 } }, 1, CUR_IMAGE, 0x08000010, 0, "08008000/16/300=unchanged" },
                /* two segments in one sector, given out of order */
                { F429,
                  { { 0x08008100, 16 }, { 0x08008000, 16 } },
                  2,
                  CUR_IMAGE,
                  0,
                  0,
                  "08008000/16/32=unchanged" },
                { F429,
                  { { 0x08008100, 16 }, { 0x08008000, 16 } },
                  2,
                  CUR_IMAGE,
                  0x08008080,
                  0,
                  "08008000/16/32=changed" },
                /* segments in distant sectors */
                { F429,
                  { { 0x08004000, 4 }, { 0x08060000, 4 } },
                  2,
                  CUR_BLANK,
                  0,
                  0,
                  "08004000/16/4=blank 08060000/128/4=blank" },
                /* an empty segment is ignored */
                { F429,
                  { { 0x08008000, 0 }, { 0x0800c000, 1 } },
                  2,
                  CUR_BLANK,
                  0,
                  0,
                  "0800c000/16/1=blank" },
                /* refusals: nothing is planned */
                { F429, { { 0x08008000, 0 } }, 1, CUR_BLANK, 0, -EINVAL, NULL },
                { F429, { { 0x08008000, 32 }, { 0x08008010, 32 } }, 2, CUR_BLANK, 0, -EINVAL, NULL },
                { F429, { { 0x080ffff0, 32 } }, 1, CUR_BLANK, 0, -ERANGE, NULL },
                { F429, { { 0x07fffff0, 32 } }, 1, CUR_BLANK, 0, -ERANGE, NULL },
                { F429, { { 0xfffffff0, 32 } }, 1, CUR_BLANK, 0, -EINVAL, NULL },
                { RO0, { { 0x08000000, 32 } }, 1, CUR_BLANK, 0, -EACCES, NULL },
                { RO0, { { 0x08003ff0, 32 } }, 1, CUR_BLANK, 0, -EACCES, NULL },
                { RO0, { { 0x08004000, 32 } }, 1, CUR_BLANK, 0, 0, "08004000/16/32=blank" },
        };
        _cleanup_free_ uint8_t *image = malloc(FLASH_SIZE), *flash = malloc(FLASH_SIZE);

        CHECK(image && flash);
        for (uint32_t i = 0; i < FLASH_SIZE; i++)
                image[i] = image_byte(BASE + i);

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                FlashSegment segs[3];
                DfuseLayout *layout = NULL;
                FlashPlan *p = NULL;
                char *msg = NULL, got[512];
                int r;

                CHECK_INT(dfuse_layout_parse(cases[i].layout, strlen(cases[i].layout), &layout), 0);
                for (size_t k = 0; k < cases[i].n; k++) {
                        uint32_t a = cases[i].segs[k].address;
                        segs[k] = (FlashSegment){
                                .address = a,
                                .data = a >= BASE && a < BASE + FLASH_SIZE ? image + (a - BASE) : image,
                                .size = cases[i].segs[k].len,
                        };
                }

                r = flash_plan_new(&p, layout, segs, cases[i].n, &msg);
                CHECK_INT(r, cases[i].ret);
                if (r < 0) {
                        /* every refusal says why */
                        CHECK(msg && strlen(msg) > 10);
                        free(msg);
                        dfuse_layout_free(layout);
                        continue;
                }

                /* The device's current content. */
                memset(flash, cases[i].current == CUR_ZERO ? 0x00 : 0xFF, FLASH_SIZE);
                if (cases[i].current == CUR_IMAGE_OLD)
                        for (size_t k = 0; k < p->n_sectors; k++)
                                memset(flash + (p->sectors[k].address - BASE), 0x00, p->sectors[k].size);
                if (cases[i].current == CUR_IMAGE || cases[i].current == CUR_IMAGE_OLD)
                        for (size_t k = 0; k < cases[i].n; k++)
                                memcpy(flash + (cases[i].segs[k].address - BASE), segs[k].data,
                                       segs[k].size);
                if (cases[i].poke)
                        flash[cases[i].poke - BASE] ^= 0x5a;

                for (size_t k = 0; k < p->n_sectors; k++)
                        flash_plan_classify(p, k, flash + (p->sectors[k].address - BASE));
                describe(p, got, sizeof(got));
                CHECK_STR(got, cases[i].expected);

                flash_plan_free(p);
                dfuse_layout_free(layout);
        }
}

static void test_target_and_compare(void)
{
        static uint8_t data[] = { 1, 2, 3 };
        FlashSegment seg = { .address = 0x08004002, .data = data, .size = sizeof(data) };
        DfuseLayout *layout = NULL;
        FlashPlan *p = NULL;
        uint8_t *target;

        CHECK_INT(dfuse_layout_parse(F429, strlen(F429), &layout), 0);
        CHECK_INT(flash_plan_new(&p, layout, &seg, 1, NULL), 0);
        CHECK_INT(p->n_sectors, 1);
        CHECK_INT(p->max_sector_size, 16384);
        target = malloc(p->max_sector_size);
        flash_plan_sector_target(p, 0, target);
        /* image bytes where covered, 0xFF elsewhere */
        CHECK_INT(target[0], 0xFF);
        CHECK_INT(target[1], 0xFF);
        CHECK_INT(target[2], 1);
        CHECK_INT(target[4], 3);
        CHECK_INT(target[5], 0xFF);
        CHECK_INT(target[16383], 0xFF);

        static const struct {
                uint8_t target[4], current[4];
                bool equal, blank;
                FlashSectorAction action;
        } cases[] = {
                { { 1, 2, 3, 4 }, { 1, 2, 3, 4 }, true, false, FLASH_SECTOR_UNCHANGED },
                { { 1, 2, 3, 4 }, { 0xFF, 0xFF, 0xFF, 0xFF }, false, true, FLASH_SECTOR_BLANK },
                { { 0xFF, 0xFF, 0xFF, 0xFF },
                  { 0xFF, 0xFF, 0xFF, 0xFF },
                  true,
                  true,
                  FLASH_SECTOR_UNCHANGED },
                { { 1, 2, 3, 4 }, { 1, 2, 3, 0xFF }, false, false, FLASH_SECTOR_CHANGED },
                { { 1, 2, 3, 4 }, { 0xFF, 0xFF, 0xFF, 0 }, false, false, FLASH_SECTOR_CHANGED },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                bool equal = true, blank = true;

                /* in two pieces, as the session reads it */
                flash_compare_update(cases[i].target, cases[i].current, 2, &equal, &blank);
                flash_compare_update(cases[i].target + 2, cases[i].current + 2, 2, &equal, &blank);
                CHECK_INT(equal, cases[i].equal);
                CHECK_INT(blank, cases[i].blank);
                CHECK_INT(flash_sector_action_from(equal, blank), cases[i].action);
        }
        CHECK_STR(flash_sector_action_to_string(FLASH_SECTOR_UNCHANGED), "unchanged");
        CHECK(!flash_sector_action_to_string(_FLASH_SECTOR_ACTION_MAX));

        free(target);
        flash_plan_free(p);
        dfuse_layout_free(layout);
}

/* Sector 0 holds the vector table: erased first and written last whenever
 * anything else is written, even when its own bytes did not change. */
static void test_protect_vector_table(void)
{
#define U FLASH_SECTOR_UNCHANGED
#define C FLASH_SECTOR_CHANGED
#define B FLASH_SECTOR_BLANK
        static const struct {
                size_t n;
                FlashSectorAction in[4], out[4];
                bool remarked;
        } cases[] = {
                { 4, { U, U, C, U }, { C, U, C, U }, true },  /* a rebuild that changed the middle */
                { 4, { U, U, U, B }, { C, U, U, B }, true },  /* the new image is longer */
                { 4, { U, U, U, U }, { U, U, U, U }, false }, /* up to date: nothing touched */
                { 4, { C, U, C, U }, { C, U, C, U }, false }, /* already erased first */
                { 3, { B, C, U }, { B, C, U }, false },       /* no vector table to protect */
                { 1, { U }, { U }, false },
                { 1, { C }, { C }, false },
        };
        FlashPlanSector sectors[4];

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                FlashPlan p = { .sectors = sectors, .n_sectors = cases[i].n };

                for (size_t k = 0; k < cases[i].n; k++)
                        sectors[k] = (FlashPlanSector){ .address = 0x08008000 + 0x4000 * (uint32_t)k,
                                                        .size = 0x4000,
                                                        .action = cases[i].in[k] };
                CHECK_INT(flash_plan_protect_vector_table(&p), cases[i].remarked);
                for (size_t k = 0; k < cases[i].n; k++)
                        CHECK_INT(sectors[k].action, cases[i].out[k]);
        }
#undef U
#undef C
#undef B
}

int main(void)
{
        test_plan();
        test_target_and_compare();
        test_protect_vector_table();
        TESTS_EXIT();
}
