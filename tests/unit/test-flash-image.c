/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdbool.h>

#include "codec/flash-image.h"
#include "tests.h"
#include "util/macros.h"

/* ---- segment bookkeeping ---- */

typedef struct Add {
        uint32_t address;
        size_t size;
        int ret;
} Add;

typedef struct Span {
        uint32_t address;
        size_t size;
} Span;

typedef struct AddCase {
        const char *what;
        Add adds[6];
        Span expect[4];
} AddCase;

static const AddCase add_cases[] = {
        { "in order, merged", { { 0x100, 16 }, { 0x110, 16 }, { 0x120, 16 } }, { { 0x100, 48 } } },
        { "reverse order, merged", { { 0x120, 16 }, { 0x110, 16 }, { 0x100, 16 } }, { { 0x100, 48 } } },
        { "gap then bridge", { { 0x100, 16 }, { 0x120, 16 }, { 0x110, 16 } }, { { 0x100, 48 } } },
        { "gaps kept",
          { { 0x200, 4 }, { 0x100, 4 }, { 0x300, 4 } },
          { { 0x100, 4 }, { 0x200, 4 }, { 0x300, 4 } } },
        { "overlap refused",
          { { 0x100, 16 },
            { 0x10f, 2, -EEXIST },
            { 0xff, 2, -EEXIST },
            { 0x100, 1, -EEXIST },
            { 0xf0, 16 } },
          { { 0xf0, 32 } } },
        { "inside a hole",
          { { 0x100, 16 }, { 0x200, 16 }, { 0x180, 0x81, -EEXIST }, { 0x180, 0x80 } },
          { { 0x100, 16 }, { 0x180, 0x90 } } },
        { "top of the address space",
          { { 0xfffffff0, 16 }, { 0xfffffff8, 8, -EEXIST }, { 0xffffffff, 2, -ERANGE } },
          { { 0xfffffff0, 16 } } },
        { "zero size is a no-op", { { 0x100, 0 } }, {} },
};

static void test_add(void)
{
        static uint8_t data[0x100];

        for (size_t i = 0; i < sizeof(data); i++)
                data[i] = (uint8_t)i;

        for (size_t i = 0; i < ELEMENTSOF(add_cases); i++) {
                const AddCase *c = &add_cases[i];
                FlashImage *img = NULL;
                size_t n = 0, total = 0;

                fprintf(stderr, "add: %s\n", c->what);
                CHECK_INT(flash_image_new(&img, FLASH_IMAGE_FORMAT_BIN), 0);
                for (size_t j = 0; j < ELEMENTSOF(c->adds) && (c->adds[j].size || j == 0); j++) {
                        CHECK_INT(flash_image_add(img, c->adds[j].address, data, c->adds[j].size),
                                  c->adds[j].ret);
                        if (c->adds[j].ret == 0)
                                total += c->adds[j].size;
                }
                while (n < ELEMENTSOF(c->expect) && c->expect[n].size)
                        n++;
                CHECK_INT(img->n_segments, n);
                CHECK_INT(flash_image_get_size(img), total);
                for (size_t j = 0; j < MIN(n, img->n_segments); j++) {
                        CHECK_INT(img->segments[j].address, c->expect[j].address);
                        CHECK_INT(img->segments[j].size, c->expect[j].size);
                }
                flash_image_free(img);
        }

        /* Content survives merging in any order. */
        FlashImage *img = NULL;
        CHECK_INT(flash_image_new(&img, FLASH_IMAGE_FORMAT_BIN), 0);
        CHECK_INT(flash_image_add(img, 0x1010, data + 0x10, 0x10), 0);
        CHECK_INT(flash_image_add(img, 0x1030, data + 0x30, 0x10), 0);
        CHECK_INT(flash_image_add(img, 0x1000, data, 0x10), 0);
        CHECK_INT(flash_image_add(img, 0x1020, data + 0x20, 0x10), 0);
        CHECK_INT(img->n_segments, 1);
        CHECK(flash_image_find(img, 0x1000, 0x40) &&
              memcmp(flash_image_find(img, 0x1000, 0x40), data, 0x40) == 0);
        CHECK(flash_image_find(img, 0x1020, 0x20) == img->segments[0].data + 0x20);
        CHECK(!flash_image_find(img, 0x1020, 0x21));
        CHECK(!flash_image_find(img, 0xfff, 2));
        CHECK(flash_image_touches(img, 0x0, 0x1001));
        CHECK(!flash_image_touches(img, 0x0, 0x1000));
        CHECK(!flash_image_touches(img, 0x1040, 0x1000));
        CHECK_INT(flash_image_get_address(img), 0x1000);
        CHECK_INT(flash_image_get_end(img), 0x1040);
        flash_image_free(img);
}

/* ---- raw binary ---- */

static void test_bin(void)
{
        static const uint8_t data[] = { 1, 2, 3, 4 };
        FlashImage *img = NULL;
        char *err = NULL;

        CHECK_INT(flash_image_parse_bin(data, sizeof(data), 0x08008000, &img, &err), 0);
        CHECK(img && img->n_segments == 1 && img->segments[0].address == 0x08008000);
        CHECK_INT(flash_image_get_format(img), FLASH_IMAGE_FORMAT_BIN);
        img = flash_image_free(img);

        CHECK_INT(flash_image_parse_bin(data, 0, 0x08008000, &img, &err), -ENODATA);
        CHECK(err && !img);
        CHECK_INT(flash_image_parse_bin(data, sizeof(data), 0xfffffffe, &img, &err), -ERANGE);
        CHECK(err && strstr(err, "32-bit"));

        /* The documented limit, exactly and one byte over. */
        uint8_t *big = calloc(1, FLASH_IMAGE_MAX_SIZE + 1);
        CHECK(big);
        if (big) {
                CHECK_INT(flash_image_parse_bin(big, FLASH_IMAGE_MAX_SIZE, 0x08000000, &img, &err), 0);
                img = flash_image_free(img);
                CHECK_INT(flash_image_parse_bin(big, FLASH_IMAGE_MAX_SIZE + 1, 0x08000000, &img, &err),
                          -EFBIG);
                CHECK(err && strstr(err, "more than 16 MiB"));
        }
        free(big);
        free(err);
}

/* ---- Intel HEX ---- */

typedef struct HexCase {
        const char *what;
        const char *text;
        int ret;
        const char *error;
        Span expect[3];
        uint32_t entry; /* 0: none */
} HexCase;

static const HexCase hex_cases[] = {
        { "data and EOF", ":0400000001020304F2\n:00000001FF\n", 0, NULL, { { 0x0, 4 } } },
        { "CRLF, lower case, blank lines",
          "\r\n:0400000001020304f2\r\n\r\n:00000001ff\r\n",
          0,
          NULL,
          { { 0x0, 4 } } },
        { "extended linear address",
          ":020000040800F2\n:048000000102030472\n:04800400050607085E\n:04000005080081ED81\n:00000001FF\n",
          0,
          NULL,
          { { 0x08008000, 8 } },
          0x080081ED },
        { "two regions",
          ":020000040800F2\n:0100000011EE\n:020000041FFFDC\n:01C00000221D\n:00000001FF\n",
          0,
          NULL,
          { { 0x08000000, 1 }, { 0x1FFFC000, 1 } } },
        { "extended segment address wraps in its segment",
          ":020000021000EC\n:04FFFE00AABBCCDDF1\n:00000001FF\n",
          0,
          NULL,
          { { 0x10000, 2 }, { 0x1FFFE, 2 } } },
        { "start segment address",
          ":0400000300100020C9\n:0100000011EE\n:00000001FF\n",
          0,
          NULL,
          { { 0x0, 1 } },
          0x120 },
        { "no EOF", ":0400000001020304F2\n", -EBADMSG, "end-of-file" },
        { "checksum", ":0400000001020304F3\n:00000001FF\n", -EBADMSG, "line 1: checksum" },
        { "count mismatch", ":0500000001020304F1\n:00000001FF\n", -EBADMSG, "byte count" },
        { "odd digits", ":0400000001020304F\n:00000001FF\n", -EBADMSG, "hex digits" },
        { "not hex", ":04000000010203G4F2\n:00000001FF\n", -EBADMSG, "hex digits" },
        { "no colon", "0400000001020304F2\n", -EBADMSG, "must start with ':'" },
        { "unknown type", ":00000006FA\n:00000001FF\n", -EBADMSG, "record type 06" },
        { "short record", ":0000\n", -EBADMSG, "too short" },
        { "bad EOF", ":0100000100FE\n", -EBADMSG, "end-of-file record" },
        { "bad 04", ":03000004080000F1\n", -EBADMSG, "extended linear" },
        { "bad 02", ":0100000210ED\n", -EBADMSG, "extended segment" },
        { "bad 05", ":020000050800F1\n", -EBADMSG, "start linear" },
        { "overlap", ":0400000001020304F2\n:0100020011EC\n:00000001FF\n", -EEXIST, "line 2" },
        { "data after EOF", ":00000001FF\n:0100000011EE\n", -EBADMSG, "after its end-of-file" },
        { "padding after EOF is fine", ":0100000011EE\n:00000001FF\n\x1a", 0, NULL, { { 0x0, 1 } } },
        { "no data", ":00000001FF\n", -ENODATA, "no data" },
        { "empty", "", -EBADMSG, "end-of-file" },
        { "runs past 4 GiB", ":02000004FFFFFC\n:02FFFF001122CD\n:00000001FF\n", -ERANGE, "32-bit" },
};

static void test_ihex(void)
{
        for (size_t i = 0; i < ELEMENTSOF(hex_cases); i++) {
                const HexCase *c = &hex_cases[i];
                FlashImage *img = NULL;
                char *err = NULL;
                int r;

                fprintf(stderr, "ihex: %s\n", c->what);
                r = flash_image_parse_ihex(c->text, strlen(c->text), &img, &err);
                CHECK_INT(r, c->ret);
                if (r < 0) {
                        CHECK(!img);
                        CHECK(err && c->error && strstr(err, c->error));
                        if (err && c->error && !strstr(err, c->error))
                                fprintf(stderr, "  message \"%s\" lacks \"%s\"\n", err, c->error);
                } else if (img) {
                        size_t n = 0;
                        while (n < ELEMENTSOF(c->expect) && c->expect[n].size)
                                n++;
                        CHECK_INT(img->n_segments, n);
                        for (size_t j = 0; j < MIN(n, img->n_segments); j++) {
                                CHECK_INT(img->segments[j].address, c->expect[j].address);
                                CHECK_INT(img->segments[j].size, c->expect[j].size);
                        }
                        CHECK_INT(img->has_entry, c->entry != 0);
                        if (c->entry)
                                CHECK_INT(img->entry, c->entry);
                        CHECK_INT(flash_image_get_format(img), FLASH_IMAGE_FORMAT_IHEX);
                }
                flash_image_free(img);
                free(err);
        }
}

/* Write `data` as Intel HEX records at `address`, 16 bytes a line. */
static char *make_ihex(const uint8_t *data, size_t size, uint32_t address)
{
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        uint32_t upper = 0xffffffff;

        for (size_t o = 0; o < size; o += 16) {
                uint32_t a = address + (uint32_t)o;
                size_t n = MIN((size_t)16, size - o);
                uint8_t sum;

                if (a >> 16 != upper) {
                        upper = a >> 16;
                        sum = (uint8_t)(2 + 4 + (upper >> 8) + (upper & 0xff));
                        fprintf(f, ":02000004%04X%02X\n", upper, (uint8_t)-sum);
                }
                n = MIN(n, 0x10000 - (a & 0xffff));
                sum = (uint8_t)(n + (a >> 8 & 0xff) + (a & 0xff));
                fprintf(f, ":%02zX%04X00", n, a & 0xffff);
                for (size_t k = 0; k < n; k++) {
                        fprintf(f, "%02X", data[o + k]);
                        sum = (uint8_t)(sum + data[o + k]);
                }
                fprintf(f, "%02X\n", (uint8_t)-sum);
                if (n < 16)
                        o -= 16 - n;
        }
        fprintf(f, ":00000001FF\n");
        fclose(f);
        return buf;
}

static void test_ihex_roundtrip(void)
{
        size_t size = 200000;
        uint8_t *data = malloc(size);
        FlashImage *img = NULL;
        char *text, *err = NULL;

        for (size_t i = 0; i < size; i++)
                data[i] = (uint8_t)(i * 7 + (i >> 8));
        /* crosses several 64 KiB boundaries, starts unaligned */
        text = make_ihex(data, size, 0x0800fff8);
        CHECK_INT(flash_image_parse_ihex(text, strlen(text), &img, &err), 0);
        if (img) {
                CHECK_INT(img->n_segments, 1);
                CHECK_INT(flash_image_get_address(img), 0x0800fff8);
                CHECK_INT(flash_image_get_size(img), size);
                CHECK(memcmp(img->segments[0].data, data, size) == 0);
        }
        flash_image_free(img);
        free(text);
        free(data);
        free(err);
}

/* ---- DFU suffix and DfuSe ---- */

static void test_suffix_crc(void)
{
        /* Check value of this CRC convention; and a file made by dfu-util's
         * dfu-suffix 0.11 (-v 1d50 -p 614e -d 0x0100) for "flashd-dfu-test!". */
        static const uint8_t golden[] = {
                0x66, 0x6c, 0x61, 0x73, 0x68, 0x64, 0x2d, 0x64, 0x66, 0x75, 0x2d,
                0x74, 0x65, 0x73, 0x74, 0x21, 0x00, 0x01, 0x4e, 0x61, 0x50, 0x1d,
                0x00, 0x01, 0x55, 0x46, 0x44, 0x10, 0x8c, 0xeb, 0x8c, 0xa8,
        };
        DfuSuffix s;
        size_t payload;
        FlashImage *img = NULL;
        char *err = NULL;

        CHECK_INT(dfu_suffix_crc("123456789", 9), 0x340bc6d9);
        CHECK_INT(dfu_suffix_parse(golden, sizeof(golden), &s, &payload, &err), 0);
        CHECK_INT(payload, 16);
        CHECK_INT(s.id_vendor, 0x1d50);
        CHECK_INT(s.id_product, 0x614e);
        CHECK_INT(s.bcd_device, 0x0100);
        CHECK_INT(s.bcd_dfu, 0x0100);

        /* A plain DFU file: raw data at the given address. */
        CHECK_INT(flash_image_parse_dfu(golden, sizeof(golden), false, 0, &img, &err), -EDESTADDRREQ);
        CHECK_INT(flash_image_parse_dfu(golden, sizeof(golden), true, 0x08008000, &img, &err), 0);
        if (img) {
                CHECK_INT(flash_image_get_format(img), FLASH_IMAGE_FORMAT_DFU_RAW);
                CHECK_INT(flash_image_get_size(img), 16);
                CHECK(memcmp(img->segments[0].data, "flashd-dfu-test!", 16) == 0);
                CHECK(img->has_suffix && img->suffix.id_vendor == 0x1d50);
        }
        img = flash_image_free(img);

        uint8_t bad[sizeof(golden)];
        memcpy(bad, golden, sizeof(bad));
        bad[3] ^= 1;
        CHECK_INT(dfu_suffix_parse(bad, sizeof(bad), &s, &payload, &err), -EBADMSG);
        CHECK(err && strstr(err, "CRC"));
        CHECK_INT(dfu_suffix_parse(golden, 15, &s, &payload, NULL), -ENOENT);
        CHECK_INT(dfu_suffix_parse(golden, 20, &s, &payload, NULL), -ENOENT);
        free(err);
}

typedef struct Element {
        uint32_t address;
        uint32_t size;
} Element;

typedef struct DfuseSpec {
        uint8_t version;
        uint8_t alt;
        Element elements[3];
        uint16_t bcd_dfu;
        int size_delta;        /* added to the prefix's DFUImageSize */
        int target_size_delta; /* added to dwTargetSize */
        bool no_suffix, bad_crc, trailing;
} DfuseSpec;

static void put32(uint8_t *p, uint32_t v)
{
        p[0] = (uint8_t)v;
        p[1] = (uint8_t)(v >> 8);
        p[2] = (uint8_t)(v >> 16);
        p[3] = (uint8_t)(v >> 24);
}

/* Build a DfuSe file (UM0391) with one target; element data is a pattern. */
static uint8_t *make_dfuse(const DfuseSpec *spec, size_t *ret_len)
{
        size_t n_el = 0, body = 0, len, pos = 0;
        uint8_t *f;

        while (n_el < ELEMENTSOF(spec->elements) && spec->elements[n_el].size)
                n_el++;
        for (size_t i = 0; i < n_el; i++)
                body += 8 + spec->elements[i].size;
        len = 11 + 274 + body + (spec->trailing ? 3 : 0) + 16;
        f = calloc(1, len);
        memcpy(f, "DfuSe", 5);
        f[5] = spec->version ?: 1;
        put32(f + 6, (uint32_t)((int)(len - 16) + spec->size_delta));
        f[10] = 1;
        pos = 11;
        memcpy(f + pos, "Target", 6);
        f[pos + 6] = spec->alt;
        put32(f + pos + 7, 1);
        memcpy(f + pos + 11, "ST...", 5);
        put32(f + pos + 266, (uint32_t)((int)body + spec->target_size_delta));
        put32(f + pos + 270, (uint32_t)n_el);
        pos += 274;
        for (size_t i = 0; i < n_el; i++) {
                put32(f + pos, spec->elements[i].address);
                put32(f + pos + 4, spec->elements[i].size);
                pos += 8;
                for (uint32_t k = 0; k < spec->elements[i].size; k++)
                        f[pos + k] = (uint8_t)(k + i);
                pos += spec->elements[i].size;
        }
        pos += spec->trailing ? 3 : 0;
        if (!spec->no_suffix) {
                uint16_t bcd = spec->bcd_dfu ?: 0x011a;
                uint8_t *s = f + pos;
                s[0] = 0x00, s[1] = 0x22, s[2] = 0x11, s[3] = 0xdf, s[4] = 0x83, s[5] = 0x04;
                s[6] = (uint8_t)bcd, s[7] = (uint8_t)(bcd >> 8);
                s[8] = 'U', s[9] = 'F', s[10] = 'D', s[11] = 16;
                put32(s + 12, dfu_suffix_crc(f, len - 4) ^ (spec->bad_crc ? 1 : 0));
        }
        *ret_len = len;
        return f;
}

typedef struct DfuseCase {
        const char *what;
        DfuseSpec spec;
        int ret;
        const char *error;
        size_t n_segments;
} DfuseCase;

static const DfuseCase dfuse_cases[] = {
        { "one element", { .elements = { { 0x08008000, 1000 } } }, 0, NULL, 1 },
        { "adjacent elements merge",
          { .elements = { { 0x08008000, 1024 }, { 0x08008400, 8 } } },
          0,
          NULL,
          1 },
        { "two regions", { .elements = { { 0x08008000, 16 }, { 0x08020000, 16 } } }, 0, NULL, 2 },
        { "overlapping elements",
          { .elements = { { 0x08008000, 16 }, { 0x0800800f, 16 } } },
          -EEXIST,
          "overlaps" },
        { "alt 1", { .alt = 1, .elements = { { 0x1fffc000, 16 } } }, -EOPNOTSUPP, "alt setting 1" },
        { "version 2", { .version = 2, .elements = { { 0x08008000, 16 } } }, -EBADMSG, "version 2" },
        { "wrong image size",
          { .size_delta = 1, .elements = { { 0x08008000, 16 } } },
          -EBADMSG,
          "prefix says" },
        { "target too large",
          { .target_size_delta = 8, .elements = { { 0x08008000, 16 } } },
          -EBADMSG,
          "runs past" },
        { "target too small",
          { .target_size_delta = -4, .elements = { { 0x08008000, 16 } } },
          -EBADMSG,
          "run past the target" },
        { "trailing bytes",
          { .trailing = true, .elements = { { 0x08008000, 16 } } },
          -EBADMSG,
          "after its targets" },
        { "no suffix",
          { .no_suffix = true, .elements = { { 0x08008000, 16 } } },
          -EBADMSG,
          "no DFU suffix" },
        { "bad CRC", { .bad_crc = true, .elements = { { 0x08008000, 16 } } }, -EBADMSG, "CRC mismatch" },
        { "not DfuSe bcdDFU",
          { .bcd_dfu = 0x0100, .elements = { { 0x08008000, 16 } } },
          -EBADMSG,
          "0x011a" },
        { "no elements", {}, -ENODATA, "no data" },
};

static void test_dfuse(void)
{
        for (size_t i = 0; i < ELEMENTSOF(dfuse_cases); i++) {
                const DfuseCase *c = &dfuse_cases[i];
                FlashImage *img = NULL;
                char *err = NULL;
                size_t len;
                uint8_t *f = make_dfuse(&c->spec, &len);
                int r;

                fprintf(stderr, "dfuse: %s\n", c->what);
                CHECK_INT(flash_image_detect(f, len, NULL), FLASH_IMAGE_FORMAT_DFUSE);
                r = flash_image_parse_dfu(f, len, false, 0, &img, &err);
                CHECK_INT(r, c->ret);
                if (r < 0) {
                        CHECK(!img);
                        CHECK(err && strstr(err, c->error));
                        if (err && !strstr(err, c->error))
                                fprintf(stderr, "  message \"%s\" lacks \"%s\"\n", err, c->error);
                } else if (img) {
                        CHECK_INT(img->n_segments, c->n_segments);
                        CHECK_INT(flash_image_get_address(img), c->spec.elements[0].address);
                        CHECK_INT(flash_image_get_format(img), FLASH_IMAGE_FORMAT_DFUSE);
                        CHECK(img->suffix.id_vendor == 0x0483 && img->suffix.id_product == 0xdf11);
                        CHECK(img->segments[0].data[5] == 5);
                }
                flash_image_free(img);
                free(err);
                free(f);
        }
}

/* ---- detection and the combined entry point ---- */

typedef struct DetectCase {
        const char *content;
        size_t len; /* 0: strlen() */
        const char *name;
        FlashImageFormat format;
} DetectCase;

static const DetectCase detect_cases[] = {
        { ":0400000001020304F2\n:00000001FF\n", 0, NULL, FLASH_IMAGE_FORMAT_IHEX },
        { "\n:0400000001020304F2\n", 0, "klipper.bin", FLASH_IMAGE_FORMAT_IHEX },
        { "\x00\x00\x02\x20\x01\x80\x00\x08", 8, NULL, FLASH_IMAGE_FORMAT_BIN },
        { "\x00\x00\x02\x20\x01\x80\x00\x08", 8, "klipper.bin", FLASH_IMAGE_FORMAT_BIN },
        { "garbage that is not hex", 0, "klipper.HEX", FLASH_IMAGE_FORMAT_IHEX },
        { "garbage that is not dfu", 0, "klipper.dfu", FLASH_IMAGE_FORMAT_DFUSE },
        { ":short", 0, NULL, FLASH_IMAGE_FORMAT_BIN },
        { "DfuSe", 0, "x.bin", FLASH_IMAGE_FORMAT_DFUSE },
        { "", 0, NULL, FLASH_IMAGE_FORMAT_BIN },
};

static void test_detect(void)
{
        for (size_t i = 0; i < ELEMENTSOF(detect_cases); i++) {
                const DetectCase *c = &detect_cases[i];
                CHECK_INT(flash_image_detect(c->content, c->len ?: strlen(c->content), c->name), c->format);
        }

        for (int f = 0; f < _FLASH_IMAGE_FORMAT_MAX; f++)
                CHECK_INT(flash_image_format_from_string(flash_image_format_to_string(f)), f);
        CHECK_INT(flash_image_format_from_string("ihex"), FLASH_IMAGE_FORMAT_IHEX);
        CHECK_INT(flash_image_format_from_string("elf"), _FLASH_IMAGE_FORMAT_INVALID);
        CHECK(!flash_image_format_to_string(_FLASH_IMAGE_FORMAT_MAX));
}

static void test_parse(void)
{
        static const char hex[] = ":020000040800F2\n:048000000102030472\n:00000001FF\n";
        static const uint8_t bin[] = { 0, 0, 2, 0x20, 0x01, 0x80, 0, 8 };
        FlashImage *img = NULL;
        char *err = NULL;

        CHECK_INT(flash_image_parse(bin, sizeof(bin), _FLASH_IMAGE_FORMAT_INVALID, "k.bin", false, 0, &img,
                                    &err),
                  -EDESTADDRREQ);
        CHECK_INT(flash_image_parse(bin, sizeof(bin), _FLASH_IMAGE_FORMAT_INVALID, "k.bin", true, 0x08008000,
                                    &img, &err),
                  0);
        CHECK(img && flash_image_get_address(img) == 0x08008000);
        img = flash_image_free(img);

        CHECK_INT(
                flash_image_parse(hex, strlen(hex), _FLASH_IMAGE_FORMAT_INVALID, NULL, false, 0, &img, &err),
                0);
        CHECK(img && flash_image_get_address(img) == 0x08008000);
        img = flash_image_free(img);
        CHECK_INT(flash_image_parse(hex, strlen(hex), _FLASH_IMAGE_FORMAT_INVALID, NULL, true, 0x08008000,
                                    &img, &err),
                  0);
        img = flash_image_free(img);
        CHECK_INT(flash_image_parse(hex, strlen(hex), _FLASH_IMAGE_FORMAT_INVALID, NULL, true, 0x08000000,
                                    &img, &err),
                  -EINVAL);
        CHECK(err && strstr(err, "contradicts"));
        /* An explicit format wins over content. */
        CHECK_INT(flash_image_parse(hex, strlen(hex), FLASH_IMAGE_FORMAT_BIN, NULL, true, 0x08000000, &img,
                                    &err),
                  0);
        CHECK(img && flash_image_get_size(img) == strlen(hex));
        img = flash_image_free(img);
        /* A broken .hex gets Intel HEX's error, not a raw flash of its text. */
        CHECK_INT(flash_image_parse("hello", 5, _FLASH_IMAGE_FORMAT_INVALID, "fw.hex", true, 0x08000000,
                                    &img, &err),
                  -EBADMSG);
        CHECK(err && strstr(err, "Intel HEX"));
        free(err);
}

/* ---- one flat buffer for byte-stream bootloaders ---- */

static void test_flatten(void)
{
        static const struct {
                const char *what;
                Span segs[3];
                size_t n;
                uint32_t base;
                int ret;
                size_t size;     /* of the flat buffer */
                uint32_t gap[2]; /* [from, to) filled with 0xFF, relative to base */
        } cases[] = {
                { "one piece", { { 0x08002000, 16 } }, 1, 0x08002000, 0, 16, { 0, 0 } },
                { "a gap between pieces",
                  { { 0x08002000, 8 }, { 0x08002010, 8 } },
                  2,
                  0x08002000,
                  0,
                  24,
                  { 8, 16 } },
                { "from address 0 (AVR)", { { 0x40, 4 } }, 1, 0, 0, 0x44, { 0, 0x40 } },
                { "empty", { { 0, 0 } }, 0, 0, -EINVAL, 0, { 0, 0 } },
                { "data below the base", { { 0x1000, 4 } }, 1, 0x2000, -ERANGE, 0, { 0, 0 } },
                { "a span past the limit",
                  { { 0, 4 }, { FLASH_IMAGE_MAX_SIZE, 4 } },
                  2,
                  0,
                  -EFBIG,
                  0,
                  { 0, 0 } },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(flash_image_freep) FlashImage *img = NULL;
                _cleanup_free_ uint8_t *flat = NULL;
                size_t size = 0;
                uint8_t fill = 1;

                CHECK_INT(flash_image_new(&img, FLASH_IMAGE_FORMAT_BIN), 0);
                for (size_t k = 0; k < cases[i].n; k++) {
                        uint8_t data[16];
                        memset(data, fill++, sizeof(data));
                        CHECK_INT(
                                flash_image_add(img, cases[i].segs[k].address, data, cases[i].segs[k].size),
                                0);
                }
                int r = flash_image_flatten(img, cases[i].base, &flat, &size);
                if (r != cases[i].ret)
                        fprintf(stderr, "case: %s\n", cases[i].what);
                CHECK_INT(r, cases[i].ret);
                if (r < 0)
                        continue;
                CHECK_INT(size, cases[i].size);
                for (size_t o = 0; o < size; o++) {
                        bool in_gap = o >= cases[i].gap[0] && o < cases[i].gap[1];
                        if (in_gap)
                                CHECK_INT(flat[o], 0xff);
                        else
                                CHECK(flat[o] != 0xff && flat[o] != 0);
                }
                /* each piece at its own offset */
                for (size_t k = 0; k < cases[i].n; k++)
                        CHECK_INT(flat[cases[i].segs[k].address - cases[i].base], k + 1);
        }
}

int main(void)
{
        test_add();
        test_bin();
        test_ihex();
        test_ihex_roundtrip();
        test_suffix_crc();
        test_dfuse();
        test_detect();
        test_parse();
        test_flatten();
        TESTS_EXIT();
}
