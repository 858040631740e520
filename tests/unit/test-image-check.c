/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdbool.h>
#include <zlib.h>

#include "codec/image-check.h"
#include "tests.h"
#include "util/macros.h"

#define F446_LAYOUT "@Internal Flash  /0x08000000/04*016Kg,01*064Kg,03*128Kg"
#define H723_LAYOUT "@Internal Flash  /0x08000000/08*128Kg"
#define RO_LAYOUT   "@Internal Flash  /0x08000000/02*016Ka,02*016Kg,01*064Kg,03*128Kg"

static void put32(uint8_t *p, uint32_t v)
{
        p[0] = (uint8_t)v;
        p[1] = (uint8_t)(v >> 8);
        p[2] = (uint8_t)(v >> 16);
        p[3] = (uint8_t)(v >> 24);
}

/* What `make` in Klipper produces, in miniature: a Cortex-M vector table
 * (SP, reset, core handlers, ~90 IRQs to a default handler), "code" whose
 * literal pools hold pointers into the image, and the zlib-compressed JSON
 * data dictionary (scripts/buildcommands.py) somewhere in the middle. */
typedef struct ImageSpec {
        uint32_t built_for; /* link address */
        size_t size;
        uint32_t sp;
        uint32_t reset_offset; /* reset handler, relative to built_for (odd for Thumb) */
        const char *mcu;       /* NULL: no dictionary */
} ImageSpec;

static uint8_t *make_image(const ImageSpec *s)
{
        uint8_t *d = calloc(1, s->size);
        size_t table = 4 * (16 + 90);

        put32(d, s->sp);
        put32(d + 4, s->built_for + s->reset_offset);
        for (size_t i = 2; i < table / 4; i++)
                if (i < 7 || i == 11 || i == 14 || i == 15 || i >= 16)
                        put32(d + 4 * i, s->built_for + table + 0x41); /* DefaultHandler */
        /* Code: Thumb NOPs with a literal pool every 256 bytes pointing to
         * functions and rodata spread over the whole image. */
        for (size_t o = table; o + 4 <= s->size; o += 4)
                put32(d + o, 0xbf00bf00);
        for (size_t o = table, k = 0; o + 16 <= s->size; o += 256, k++) {
                uint32_t target = (uint32_t)((k * 2654435761u) % (s->size - 4)) & ~3u;
                put32(d + o, s->built_for + target + (k & 1));
                put32(d + o + 4, 0x20000100 + (uint32_t)(k & 0xff) * 4); /* RAM pointer */
                put32(d + o + 8, 0x40023800);                            /* RCC */
        }
        if (s->mcu) {
                char json[512];
                uint8_t z[1024];
                uLongf zlen = sizeof(z);
                int n = snprintf(json, sizeof(json),
                                 "{\"app\":\"Klipper\",\"build_versions\":\"gcc: 12.2 binutils: 2.40\","
                                 "\"commands\":{\"identify offset=%%u count=%%c\":1},"
                                 "\"config\":{\"CLOCK_FREQ\":180000000,\"MCU\":\"%s\"},"
                                 "\"version\":\"v0.12.0-100-gabcdef12\"}",
                                 s->mcu);
                CHECK(compress2(z, &zlen, (const Bytef *)json, (uLong)n, 9) == Z_OK);
                CHECK(s->size / 2 + zlen < s->size);
                /* a decoy zlib-looking header just before it */
                d[s->size / 2 - 3] = 0x78;
                d[s->size / 2 - 2] = 0x9c;
                memcpy(d + s->size / 2, z, zlen);
        }
        return d;
}

typedef struct Target {
        const char *layout;
        uint32_t app_offset, ram_size, flash_size;
        const char *mcu;
} Target;

static const Target F446 = { F446_LAYOUT, 0x8000, 0x20000, 512 * 1024, "stm32f446xx" };
static const Target H723 = { H723_LAYOUT, 0x20000, 0x20000, 1024 * 1024, "stm32h723xx" };
static const Target F446_RO = { RO_LAYOUT, 0x8000, 0x20000, 512 * 1024, "stm32f446xx" };
static const Target F446_NO_MCU = { F446_LAYOUT, 0x8000, 0x20000, 512 * 1024, NULL };
static const Target F446_NO_RAM = { F446_LAYOUT, 0x8000, 0, 512 * 1024, "stm32f446xx" };

typedef struct CheckCase {
        const char *what;
        ImageSpec image;
        uint32_t write_at;
        const Target *target;
        int expect[_IMAGE_CHECK_MAX]; /* fit, vector-table, bootloader-region, mcu */
        const char *message;          /* substring of the first failure's message */
} CheckCase;

#define K    1024
#define SKIP IMAGE_CHECK_SKIPPED

static const CheckCase cases[] = {
        { "klipper for 32 KiB bootloader, at 0x08008000",
          { 0x08008000, 40 * K, 0x20020000, 0x201, "stm32f446xx" },
          0x08008000,
          &F446,
          { 0, 0, 0, 0 } },
        { "same image at 0x08000000",
          { 0x08008000, 40 * K, 0x20020000, 0x201, "stm32f446xx" },
          0x08000000,
          &F446,
          { 0, -ENOEXEC, -EPERM, 0 },
          "built for 0x08008000 (32 KiB bootloader)" },
        { "same image at 0x08000000, small (reset outside the written range)",
          { 0x08008000, 16 * K, 0x20020000, 0x201, "stm32f446xx" },
          0x08000000,
          &F446,
          { 0, -ENOEXEC, -EPERM, 0 },
          "built for 0x08008000 (32 KiB bootloader)" },
        { "image without bootloader at 0x08008000",
          { 0x08000000, 40 * K, 0x20020000, 0x201, "stm32f446xx" },
          0x08008000,
          &F446,
          { 0, -ENOEXEC, 0, 0 },
          "rebuild it with the board's bootloader offset (make menuconfig, \"Bootloader offset: 32KiB "
          "bootloader\")" },
        { "large image without bootloader at 0x08008000, reset handler deep inside",
          { 0x08000000, 300 * K, 0x20020000, 0x9001, "stm32f446xx" },
          0x08008000,
          &F446,
          { 0, -ENOEXEC, 0, 0 },
          "rebuild it with the board's bootloader offset (make menuconfig, \"Bootloader offset: 32KiB "
          "bootloader\")" },
        { "large image without bootloader at 0x08000000, reset handler deep inside",
          { 0x08000000, 300 * K, 0x20020000, 0x40001, NULL },
          0x08000000,
          &F446,
          { 0, 0, -EPERM, SKIP },
          "to replace the bootloader itself (installing Katapult), add --force bootloader-region" },
        { "H723 image for 128 KiB at 0x08000000",
          { 0x08020000, 160 * K, 0x20020000, 0x801, "stm32h723xx" },
          0x08000000,
          &H723,
          { 0, -ENOEXEC, -EPERM, 0 },
          "built for 0x08020000 (128 KiB bootloader)" },
        { "H723 image for 128 KiB at 0x08020000",
          { 0x08020000, 160 * K, 0x20020000, 0x801, "stm32h723xx" },
          0x08020000,
          &H723,
          { 0, 0, 0, 0 } },
        { "stack pointer outside RAM",
          { 0x08008000, 8 * K, 0x10010000, 0x201, NULL },
          0x08008000,
          &F446,
          { 0, -ENOEXEC, 0, SKIP },
          "stack pointer 0x10010000" },
        { "stack pointer just past RAM",
          { 0x08008000, 8 * K, 0x20020004, 0x201, NULL },
          0x08008000,
          &F446,
          { 0, -ENOEXEC, 0, SKIP },
          "stack pointer" },
        { "stack pointer unknown RAM",
          { 0x08008000, 8 * K, 0x10010000, 0x201, NULL },
          0x08008000,
          &F446_NO_RAM,
          { 0, 0, 0, SKIP } },
        { "reset vector not Thumb",
          { 0x08008000, 8 * K, 0x20020000, 0x200, NULL },
          0x08008000,
          &F446,
          { 0, -ENOEXEC, 0, SKIP },
          "Thumb" },
        { "reset vector nowhere near",
          { 0x08008000, 8 * K, 0x20020000, 0x10000001, NULL },
          0x08008000,
          &F446,
          { 0, -ENOEXEC, 0, SKIP },
          "outside the written range" },
        { "F429 image on an F446",
          { 0x08008000, 40 * K, 0x20020000, 0x201, "stm32f429xx" },
          0x08008000,
          &F446,
          { 0, 0, 0, -EMEDIUMTYPE },
          "built for stm32f429xx, but the board has an stm32f446xx" },
        { "MCU compared case-insensitively",
          { 0x08008000, 40 * K, 0x20020000, 0x201, "STM32F446XX" },
          0x08008000,
          &F446,
          { 0, 0, 0, 0 } },
        { "board MCU unknown",
          { 0x08008000, 40 * K, 0x20020000, 0x201, "stm32f429xx" },
          0x08008000,
          &F446_NO_MCU,
          { 0, 0, 0, SKIP } },
        { "too large for the F446",
          { 0x08008000, 500 * K, 0x20020000, 0x201, NULL },
          0x08008000,
          &F446,
          { -ENOSPC, 0, 0, SKIP },
          "outside the device's memory layout" },
        { "into read-only sectors",
          { 0x08000000, 16 * K, 0x20020000, 0x201, NULL },
          0x08000000,
          &F446_RO,
          { -ENOSPC, 0, -EPERM, SKIP },
          "not writeable" },
        { "below the flash",
          { 0x07ff0000, 16 * K, 0x20020000, 0x201, NULL },
          0x07ff0000,
          &F446,
          { -ENOSPC, 0, 0, SKIP },
          "outside the device's memory layout" },
        { "unaligned address one byte past the application start",
          { 0x08008000, 40 * K, 0x20020000, 0x201, NULL },
          0x08008001,
          &F446,
          { 0, -ENOEXEC, 0, SKIP },
          "not a multiple of 128 bytes" },
        { "address 4-aligned but not where a vector table can start",
          { 0x08008000, 40 * K, 0x20020000, 0x201, NULL },
          0x08008040,
          &F446,
          { 0, -ENOEXEC, 0, SKIP },
          "use the board's application address (0x08008000)" },
};

static void target_from(const Target *tt, DfuseLayout **l, ImageCheckTarget *t)
{
        CHECK_INT(dfuse_layout_parse(tt->layout, strlen(tt->layout), l), 0);
        *t = (ImageCheckTarget){
                .layout = *l,
                .flash_base = 0x08000000,
                .flash_size = tt->flash_size,
                .app_offset = tt->app_offset,
                .ram_start = 0x20000000,
                .ram_size = tt->ram_size,
                .mcu = tt->mcu,
        };
}

static void test_cases(void)
{
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                const CheckCase *c = &cases[i];
                uint8_t *data = make_image(&c->image);
                FlashImage *img = NULL;
                DfuseLayout *l = NULL;
                ImageCheckTarget t;
                ImageCheckResult results[_IMAGE_CHECK_MAX] = {};
                ImageCheck failed = _IMAGE_CHECK_INVALID;
                char *message = NULL;
                int first = 0, r;

                fprintf(stderr, "case: %s\n", c->what);
                CHECK_INT(flash_image_parse_bin(data, c->image.size, c->write_at, &img, NULL), 0);
                target_from(c->target, &l, &t);
                for (int k = 0; k < _IMAGE_CHECK_MAX; k++) {
                        char *m = NULL;
                        r = image_check_one(k, img, &t, &m);
                        if (r != c->expect[k])
                                fprintf(stderr, "  %s: %d \"%s\"\n", image_check_to_string(k), r, strna(m));
                        CHECK_INT(r, c->expect[k]);
                        CHECK(r == 0 ? !m : !!m);
                        free(m);
                        if (first == 0 && c->expect[k] < 0)
                                first = c->expect[k];
                }

                r = image_check_all(img, &t, 0, &failed, &message, results);
                CHECK_INT(r, first);
                if (first < 0 && r < 0) {
                        CHECK(message && c->message && strstr(message, c->message));
                        if (message && c->message && !strstr(message, c->message))
                                fprintf(stderr, "  \"%s\" lacks \"%s\"\n", message, c->message);
                        CHECK_INT(results[failed].result, first);
                        CHECK(!results[failed].forced);
                }
                for (int k = 0; k < _IMAGE_CHECK_MAX; k++)
                        CHECK_INT(results[k].result, c->expect[k]);
                image_check_results_clear(results);
                free(message);
                message = NULL;

                /* Forcing every failing check lets the image through, and says so. */
                unsigned force = 0;
                for (int k = 0; k < _IMAGE_CHECK_MAX; k++)
                        if (c->expect[k] < 0)
                                force |= 1u << k;
                CHECK_INT(image_check_all(img, &t, force, &failed, &message, results), 0);
                CHECK(!message);
                for (int k = 0; k < _IMAGE_CHECK_MAX; k++)
                        CHECK_INT(results[k].forced, c->expect[k] < 0);
                image_check_results_clear(results);

                flash_image_free(img);
                dfuse_layout_free(l);
                free(data);
        }
}

/* Forcing one check does not hide another. */
static void test_force_one(void)
{
        ImageSpec s = { 0x08008000, 40 * K, 0x20020000, 0x201, "stm32f429xx" };
        uint8_t *data = make_image(&s);
        FlashImage *img = NULL;
        DfuseLayout *l = NULL;
        ImageCheckTarget t;
        ImageCheck failed = _IMAGE_CHECK_INVALID;
        char *message = NULL;

        CHECK_INT(flash_image_parse_bin(data, s.size, 0x08000000, &img, NULL), 0);
        target_from(&F446, &l, &t);
        CHECK_INT(image_check_all(img, &t, 1u << IMAGE_CHECK_VECTOR_TABLE, &failed, &message, NULL), -EPERM);
        CHECK_INT(failed, IMAGE_CHECK_BOOTLOADER_REGION);
        CHECK(message &&
              strstr(message, "overwrite the board's bootloader at 0x08000000-0x08007fff (32 KiB)"));
        free(message);
        message = NULL;
        CHECK_INT(image_check_all(img, &t,
                                  1u << IMAGE_CHECK_VECTOR_TABLE | 1u << IMAGE_CHECK_BOOTLOADER_REGION,
                                  &failed, &message, NULL),
                  -EMEDIUMTYPE);
        CHECK_INT(failed, IMAGE_CHECK_MCU);
        free(message);
        flash_image_free(img);
        dfuse_layout_free(l);
        free(data);
}

/* Which link address the hint names, for images built for each of Klipper's
 * usual offsets and written where they do not belong: the synthetic Klipper
 * image above (a full vector table just below its handlers, pointers all
 * over), the same with its handlers far above the table, and what the
 * integration tests send (SP and reset vector, then random bytes: no
 * pointer to count). */
typedef enum BuiltForStyle {
        STYLE_KLIPPER,
        STYLE_FAR_HANDLERS,
        STYLE_RANDOM,
        _STYLE_MAX,
} BuiltForStyle;

static uint8_t *make_styled_image(BuiltForStyle style, uint32_t built_for, size_t size)
{
        ImageSpec s = { built_for, size, 0x20020000, 0x201, NULL };
        uint8_t *d;
        uint32_t x = built_for ^ (uint32_t)size;

        switch (style) {
        case STYLE_KLIPPER:
                return make_image(&s);
        case STYLE_FAR_HANDLERS:
                d = make_image(&s);
                /* every handler 5 KiB past the table, none just above it */
                put32(d + 4, built_for + 0x1401);
                for (size_t i = 2; i < 16 + 90; i++)
                        if (i < 7 || i == 11 || i == 14 || i == 15 || i >= 16)
                                put32(d + 4 * i, built_for + 0x1441);
                return d;
        case STYLE_RANDOM:
                d = malloc(size);
                for (size_t i = 0; i < size; i++) {
                        x = x * 1103515245u + 12345u;
                        d[i] = (uint8_t)(x >> 16);
                }
                put32(d, 0x20020000);
                put32(d + 4, built_for + 0x201);
                return d;
        case _STYLE_MAX:
                break;
        }
        return NULL;
}

static void test_built_for(void)
{
        static const struct {
                uint32_t offset;   /* the image's link address - flash base */
                uint32_t write_at; /* where it is written instead */
                const char *hint;
        } table[] = {
                { 0x00000, 0x08008000, "built for 0x08000000 (no bootloader)" },
                { 0x02000, 0x08000000, "built for 0x08002000 (8 KiB bootloader)" },
                { 0x04000, 0x08000000, "built for 0x08004000 (16 KiB bootloader)" },
                { 0x08000, 0x08000000, "built for 0x08008000 (32 KiB bootloader)" },
                { 0x08000, 0x08004000, "built for 0x08008000 (32 KiB bootloader)" },
                { 0x10000, 0x08000000, "built for 0x08010000 (64 KiB bootloader)" },
                { 0x10000, 0x08008000, "built for 0x08010000 (64 KiB bootloader)" },
                { 0x20000, 0x08000000, "built for 0x08020000 (128 KiB bootloader)" },
                { 0x20000, 0x08008000, "built for 0x08020000 (128 KiB bootloader)" },
        };
        static const size_t sizes[] = { 24 * K, 40 * K, 200 * K };
        ImageCheckTarget t = {
                .flash_base = 0x08000000,
                .flash_size = 2048 * K,
                .app_offset = 0x8000,
                .ram_start = 0x20000000,
                .ram_size = 0x20000,
        };

        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                for (BuiltForStyle style = 0; style < _STYLE_MAX; style++)
                        for (size_t k = 0; k < ELEMENTSOF(sizes); k++) {
                                uint32_t built_for = 0x08000000 + table[i].offset;
                                uint8_t *data = make_styled_image(style, built_for, sizes[k]);
                                FlashImage *img = NULL;
                                char *m = NULL;
                                int r;

                                /* where it belongs: accepted */
                                CHECK_INT(flash_image_parse_bin(data, sizes[k], built_for, &img, NULL), 0);
                                r = image_check_vector_table(img, &t, &m);
                                if (r != 0)
                                        fprintf(stderr, "built for 0x%08x, style %d, %zu bytes: \"%s\"\n",
                                                built_for, style, sizes[k], strna(m));
                                CHECK_INT(r, 0);
                                free(m);
                                m = NULL;
                                flash_image_free(img);

                                /* An image with no pointers but its reset vector, whose
                                 * reset handler lies in the written range as well: nothing
                                 * tells the two addresses apart. */
                                if (style == STYLE_RANDOM && built_for + 0x200 >= table[i].write_at &&
                                    built_for + 0x200 < table[i].write_at + sizes[k]) {
                                        free(data);
                                        continue;
                                }
                                /* elsewhere: refused, naming where it belongs */
                                CHECK_INT(
                                        flash_image_parse_bin(data, sizes[k], table[i].write_at, &img, NULL),
                                        0);
                                r = image_check_vector_table(img, &t, &m);
                                if (r != -ENOEXEC || !m || !strstr(m, table[i].hint))
                                        fprintf(stderr,
                                                "built for 0x%08x at 0x%08x, style %d, %zu bytes: \"%s\"\n",
                                                built_for, table[i].write_at, style, sizes[k], strna(m));
                                CHECK_INT(r, -ENOEXEC);
                                CHECK(m && strstr(m, table[i].hint));
                                free(m);
                                flash_image_free(img);
                                free(data);
                        }
}

static void test_dictionary(void)
{
        ImageSpec s = { 0x08008000, 8 * K, 0x20020000, 0x201, "stm32g0b1xx" };
        uint8_t *data = make_image(&s);
        char *json = NULL, *mcu = NULL, *version = NULL;
        size_t offset = 0;
        FlashImage *img = NULL;

        CHECK_INT(klipper_dictionary_extract(data, s.size, &json, &offset), 0);
        CHECK_INT(offset, s.size / 2);
        CHECK(json && strstr(json, "\"MCU\":\"stm32g0b1xx\""));
        free(json);

        CHECK_INT(flash_image_parse_bin(data, s.size, 0x08002000, &img, NULL), 0);
        CHECK_INT(klipper_dictionary_find(img, &mcu, &version), 0);
        CHECK_STR(mcu, "stm32g0b1xx");
        CHECK_STR(version, "v0.12.0-100-gabcdef12");
        free(mcu);
        free(version);
        flash_image_free(img);

        /* Cut inside the compressed stream: nothing found. */
        CHECK_INT(klipper_dictionary_extract(data, s.size / 2 + 20, &json, &offset), -ENOENT);
        free(data);

        /* A zlib JSON object that is not Klipper's, and not JSON at all. */
        static const char *const others[] = { "{\"app\":\"Marlin\"}", "[1,2,3]", "not json",
                                              "{\"app\":\"Klipper\"" };
        for (size_t i = 0; i < ELEMENTSOF(others); i++) {
                uint8_t z[256];
                uLongf zlen = sizeof(z);
                CHECK(compress2(z, &zlen, (const Bytef *)others[i], strlen(others[i]), 9) == Z_OK);
                CHECK_INT(klipper_dictionary_extract(z, zlen, NULL, NULL), -ENOENT);
        }
        CHECK_INT(klipper_dictionary_extract(NULL, 0, NULL, NULL), -ENOENT);
        CHECK_INT(klipper_dictionary_extract((const uint8_t *)"\x78", 1, NULL, NULL), -ENOENT);
}

static void test_names(void)
{
        static const char *const names[] = { "fit", "vector-table", "bootloader-region", "mcu" };
        for (int i = 0; i < _IMAGE_CHECK_MAX; i++) {
                CHECK_STR(image_check_to_string(i), names[i]);
                CHECK_INT(image_check_from_string(names[i]), i);
        }
        CHECK_INT(image_check_from_string("vector"), -EINVAL);
        CHECK(!image_check_to_string(_IMAGE_CHECK_MAX));
        CHECK_STR(klipper_offset_to_string(0x8000), "32 KiB bootloader");
        CHECK_STR(klipper_offset_to_string(0), "no bootloader");
        CHECK(!klipper_offset_to_string(0x3000));
}

static void test_no_bootloader_board(void)
{
        ImageSpec s = { 0x08000000, 8 * K, 0x20020000, 0x201, NULL };
        uint8_t *data = make_image(&s);
        FlashImage *img = NULL;
        ImageCheckTarget t = {
                .flash_base = 0x08000000, .flash_size = 64 * K, .ram_start = 0x20000000, .ram_size = 0x5000
        };
        char *m = NULL;

        CHECK_INT(flash_image_parse_bin(data, s.size, 0x08000000, &img, NULL), 0);
        CHECK_INT(image_check_bootloader_region(img, &t, &m), IMAGE_CHECK_SKIPPED);
        free(m);
        m = NULL;
        /* a board known by its layout only: its bootloader, if any, would be
         * at the start of flash, so writing there is forced by name */
        t.app_offset_unknown = true;
        CHECK_INT(image_check_bootloader_region(img, &t, &m), -EPERM);
        CHECK(m && strstr(m, "--force bootloader-region"));
        free(m);
        m = NULL;
        t.app_offset_unknown = false;
        /* without a layout, fit uses the flash size */
        CHECK_INT(image_check_fit(img, &t, &m), 0);
        t.flash_size = 4 * K;
        CHECK_INT(image_check_fit(img, &t, &m), -ENOSPC);
        CHECK(m && strstr(m, "does not fit"));
        free(m);
        flash_image_free(img);
        free(data);
}

int main(void)
{
        test_names();
        test_cases();
        test_force_one();
        test_built_for();
        test_dictionary();
        test_no_bootloader_board();
        TESTS_EXIT();
}
