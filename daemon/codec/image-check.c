/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "codec/codec-util.h"
#include "codec/image-check.h"
#include "util/macros.h"

static const char *const check_table[_IMAGE_CHECK_MAX] = {
        [IMAGE_CHECK_FIT] = "fit",
        [IMAGE_CHECK_VECTOR_TABLE] = "vector-table",
        [IMAGE_CHECK_BOOTLOADER_REGION] = "bootloader-region",
        [IMAGE_CHECK_MCU] = "mcu",
};

const char *image_check_to_string(ImageCheck c)
{
        if (c < 0 || c >= _IMAGE_CHECK_MAX)
                return NULL;
        return check_table[c];
}

ImageCheck image_check_from_string(const char *s)
{
        return (ImageCheck)string_table_lookup(check_table, _IMAGE_CHECK_MAX, s);
}

/* Klipper's stm32 FLASH_APPLICATION_ADDRESS choices, as offsets from the flash base. */
static const struct {
        uint32_t offset;
        const char *name;
} klipper_offsets[] = {
        { 0x00000, "no bootloader" },      { 0x00800, "2 KiB bootloader" },
        { 0x01000, "4 KiB bootloader" },   { 0x02000, "8 KiB bootloader" },
        { 0x04000, "16 KiB bootloader" },  { 0x05000, "20 KiB bootloader" },
        { 0x07000, "28 KiB bootloader" },  { 0x08000, "32 KiB bootloader" },
        { 0x08800, "34 KiB bootloader" },  { 0x09000, "36 KiB bootloader" },
        { 0x0C000, "48 KiB bootloader" },  { 0x10000, "64 KiB bootloader" },
        { 0x20000, "128 KiB bootloader" }, { 0x20200, "128 KiB bootloader with 512-byte offset" },
};

const char *klipper_offset_to_string(uint32_t offset)
{
        for (size_t i = 0; i < ELEMENTSOF(klipper_offsets); i++)
                if (klipper_offsets[i].offset == offset)
                        return klipper_offsets[i].name;
        return NULL;
}

/* ---- fit ---- */

int image_check_fit(const FlashImage *img, const ImageCheckTarget *t, char **ret_message)
{
        if (!img || !t)
                return -EINVAL;

        for (size_t i = 0; i < img->n_segments; i++) {
                const FlashSegment *s = &img->segments[i];
                uint64_t a = s->address, end = (uint64_t)s->address + s->size;

                if (!t->layout) {
                        if (a < t->flash_base || end > (uint64_t)t->flash_base + t->flash_size)
                                return codec_message(
                                        ret_message, -ENOSPC,
                                        "the image (0x%08" PRIx64 "-0x%08" PRIx64
                                        ") does not fit the flash at 0x%08x-0x%08" PRIx64 " (%s)",
                                        a, end - 1, t->flash_base,
                                        (uint64_t)t->flash_base + t->flash_size - 1,
                                        codec_format_size((char[CODEC_SIZE_MAX]){}, t->flash_size));
                        continue;
                }
                while (a < end) {
                        const DfuseSegment *seg = NULL;
                        uint32_t start = 0, size = 0;

                        if (!dfuse_layout_find_sector(t->layout, (uint32_t)a, &seg, &start, &size))
                                return codec_message(
                                        ret_message, -ENOSPC,
                                        "the image has data at 0x%08" PRIx64
                                        ", outside the device's memory layout (%s from 0x%08x): it is "
                                        "too large for this board or meant for another address",
                                        a,
                                        codec_format_size((char[CODEC_SIZE_MAX]){},
                                                          dfuse_layout_total_size(t->layout)),
                                        t->layout->n_regions > 0 ? t->layout->regions[0].address : 0);
                        if (!(seg->flags & DFUSE_SECTOR_WRITEABLE))
                                return codec_message(
                                        ret_message, -ENOSPC,
                                        "the image has data at 0x%08" PRIx64
                                        " in the sector at 0x%08x, which the device reports as not "
                                        "writeable",
                                        a, start);
                        a = (uint64_t)start + size;
                }
        }
        return 0;
}

/* ---- vector table ---- */

/* Aligned words of the image that point into [base, base + span). */
static size_t count_pointers(const FlashImage *img, uint64_t base, uint64_t span)
{
        size_t n = 0;

        for (size_t i = 0; i < img->n_segments; i++) {
                const FlashSegment *s = &img->segments[i];
                size_t first = (4 - (s->address & 3)) & 3;

                for (size_t o = first; o + 4 <= s->size; o += 4) {
                        uint64_t w = codec_le32(s->data + o) & ~(uint32_t)1;
                        if (w >= base && w < base + span)
                                n++;
                }
        }
        return n;
}

static void describe_base(char *buf, size_t size, uint32_t address, uint32_t flash_base)
{
        const char *name = address >= flash_base ? klipper_offset_to_string(address - flash_base) : NULL;

        if (name)
                snprintf(buf, size, "0x%08x (%s)", address, name);
        else
                snprintf(buf, size, "0x%08x", address);
}

/* ARMv7-M B1.5.2: 16 system entries and at most 240 external interrupts. */
#define VECTOR_TABLE_MAX_WORDS 256

/* The handlers the vector table names: words 1.. that are Thumb (odd)
 * addresses in [lo, hi), zero words (reserved entries) skipped, up to the
 * first word that is neither (the code after the table). */
typedef struct VectorHandlers {
        uint64_t lowest, highest; /* handler addresses, Thumb bit cleared */
        size_t n;
        uint32_t table_bytes; /* bytes of the table that was read, SP included */
} VectorHandlers;

static void vector_handlers(const uint8_t *v, uint64_t span, uint64_t lo, uint64_t hi, VectorHandlers *ret)
{
        VectorHandlers h = { .lowest = UINT64_MAX, .table_bytes = 4 };

        for (size_t i = 1; i < VECTOR_TABLE_MAX_WORDS && 4 * (i + 1) <= span; i++) {
                uint32_t w = codec_le32(v + 4 * i);
                uint64_t addr = w & ~1U;

                if (w != 0 && (!(w & 1) || addr < lo || addr >= hi))
                        break;
                h.table_bytes = (uint32_t)(4 * (i + 1));
                if (w == 0)
                        continue;
                h.lowest = MIN(h.lowest, addr);
                h.highest = MAX(h.highest, addr);
                h.n++;
        }
        *ret = h;
}

/* The table fits a link address when every handler lies in the image past the table itself. */
static bool vector_handlers_fit(const VectorHandlers *h, uint64_t base, uint64_t span)
{
        return h->n > 0 && h->lowest >= base + h->table_bytes && h->highest < base + span;
}

typedef struct BaseCandidate {
        uint64_t base;
        bool fits;
        size_t score;
} BaseCandidate;

/*
 * Which link address do the image's own pointers agree with? A candidate
 * must hold the reset handler. Candidates whose window also holds every
 * handler of the vector table, past the table, are preferred: the handlers
 * sit just above the link address, so a base far below them (a 2 KiB
 * offset for a 32 KiB image) wins only when nothing better fits. Among
 * those, the most pointers into [base, base + span) win, and a tie goes to
 * the highest base: the largest known offset at or below the lowest
 * handler. An image with hardly any pointers (a few words of data that
 * look like one by chance decide) counts a difference of one as a tie.
 */
static bool pick_base(const BaseCandidate *c, size_t n, BaseCandidate *ret)
{
        bool any_fits = false, found = false;
        size_t best_score = 0, tolerance;
        BaseCandidate best = {};

        for (size_t i = 0; i < n; i++)
                any_fits = any_fits || c[i].fits;
        for (size_t i = 0; i < n; i++)
                if (c[i].fits == any_fits)
                        best_score = MAX(best_score, c[i].score);
        tolerance = best_score < 32 ? 1 : 0;
        for (size_t i = 0; i < n; i++) {
                if (c[i].fits != any_fits || c[i].score + tolerance < best_score)
                        continue;
                if (!found || c[i].base > best.base) {
                        best = c[i];
                        found = true;
                }
        }
        if (found)
                *ret = best;
        return found;
}

/* What to do about an image built for `built_for`: rebuild it for the
 * board's bootloader offset, in Klipper's menuconfig words. Writing at the
 * address it was built for is offered only where that is the application
 * region; below it, that would replace the bootloader, which is what
 * --force bootloader-region is for and the only thing it is for. */
static void wrong_base_advice(char *buf, size_t size, uint64_t built_for, const ImageCheckTarget *t)
{
        uint64_t app = (uint64_t)t->flash_base + t->app_offset;
        char offset[48];

        if (t->app_offset == 0)
                snprintf(offset, sizeof(offset), "No bootloader");
        else if (t->app_offset % 1024 == 0)
                snprintf(offset, sizeof(offset), "%uKiB bootloader", t->app_offset / 1024);
        else
                snprintf(offset, sizeof(offset), "0x%x", t->app_offset);

        if (t->flash_size > 0 && built_for < app)
                snprintf(buf, size,
                         "rebuild it with the board's bootloader offset (make menuconfig, \"Bootloader "
                         "offset: %s\") and flash it again; writing it at 0x%08" PRIx64
                         " would replace the board's bootloader, which only --address 0x%08" PRIx64
                         " --force bootloader-region does",
                         offset, built_for, built_for);
        else if (t->flash_size > 0)
                snprintf(buf, size,
                         "rebuild it with the board's bootloader offset (make menuconfig, \"Bootloader "
                         "offset: %s\"), or write it at 0x%08" PRIx64 " (--address 0x%08" PRIx64 ")",
                         offset, built_for, built_for);
        else
                snprintf(buf, size,
                         "rebuild it with the board's bootloader offset (make menuconfig, \"Bootloader "
                         "offset\"), or write it at 0x%08" PRIx64,
                         built_for);
}

/* ARMv7-M B3.2.5 (VTOR) and ARMv6-M: a vector table starts on a multiple of
 * 128 bytes (more with many interrupts); every Klipper application address
 * is a multiple of 512. */
#define VECTOR_TABLE_ALIGN 128u

int image_check_vector_table(const FlashImage *img, const ImageCheckTarget *t, char **ret_message)
{
        char advice[384];
        BaseCandidate cand[ELEMENTSOF(klipper_offsets) + 1], best = {};
        uint32_t a, sp, reset;
        uint64_t span, lo, hi, handler;
        size_t n_cand = 0, score_a = 0;
        bool have_best, a_ok;
        VectorHandlers h;
        const uint8_t *v;
        char where[96];

        if (!img || !t)
                return -EINVAL;
        if (img->n_segments == 0)
                return codec_message(ret_message, -ENOEXEC, "the image is empty");

        /* ARMv7-M ARM B1.5.3: word 0 is the initial SP, word 1 the reset vector. */
        a = flash_image_get_address(img);
        span = flash_image_get_end(img) - a;
        if (a % VECTOR_TABLE_ALIGN != 0)
                return codec_message(
                        ret_message, -ENOEXEC,
                        "the image would start at 0x%08x, which is not a multiple of %u bytes: a Cortex-M "
                        "vector table cannot start there, so the board would not start it; use the "
                        "board's application address (0x%08" PRIx64
                        ") or the address the image was built for",
                        a, VECTOR_TABLE_ALIGN, (uint64_t)t->flash_base + t->app_offset);
        v = flash_image_find(img, a, 8);
        if (!v)
                return codec_message(ret_message, -ENOEXEC, "the image is too short to hold a vector table");
        sp = codec_le32(v);
        reset = codec_le32(v + 4);
        handler = reset & ~1U;

        if (t->ram_size > 0 &&
            (sp <= t->ram_start || (uint64_t)sp > (uint64_t)t->ram_start + t->ram_size || (sp & 3)))
                return codec_message(
                        ret_message, -ENOEXEC,
                        "the image's initial stack pointer 0x%08x is not in the board's RAM "
                        "(0x%08x-0x%08" PRIx64
                        "): this is not a firmware image for this board, or not a firmware image at all",
                        sp, t->ram_start, (uint64_t)t->ram_start + t->ram_size);
        if (!(reset & 1))
                return codec_message(
                        ret_message, -ENOEXEC,
                        "the image's reset vector 0x%08x is not a Thumb address (odd): this is not a "
                        "Cortex-M firmware image",
                        reset);

        /* Candidates: Klipper's application addresses and the board's own. */
        lo = a;
        hi = (uint64_t)a + span;
        for (size_t i = 0; i < ELEMENTSOF(klipper_offsets) + 1; i++) {
                uint64_t base = i < ELEMENTSOF(klipper_offsets)
                                        ? (uint64_t)t->flash_base + klipper_offsets[i].offset
                                        : (uint64_t)t->flash_base + t->app_offset;
                bool dup = false;

                for (size_t j = 0; j < n_cand; j++)
                        dup = dup || cand[j].base == base;
                if (base == a || base > UINT32_MAX || dup)
                        continue;
                cand[n_cand++] = (BaseCandidate){ .base = base };
                lo = MIN(lo, base);
                hi = MAX(hi, base + span);
        }

        /* The vector table is contiguous from the image's first byte only when
         * its first segment holds it; otherwise rely on the reset vector. */
        if (flash_image_find(img, a, (size_t)MIN(span, (uint64_t)4 * VECTOR_TABLE_MAX_WORDS)))
                vector_handlers(v, MIN(span, (uint64_t)4 * VECTOR_TABLE_MAX_WORDS), lo, hi, &h);
        else
                vector_handlers(v, 8, lo, hi, &h);

        /* Every candidate must hold the reset handler; score the rest. */
        for (size_t i = 0; i < n_cand;) {
                BaseCandidate *c = &cand[i];

                if (handler < c->base || handler >= c->base + span) {
                        cand[i] = cand[--n_cand];
                        continue;
                }
                c->fits = vector_handlers_fit(&h, c->base, span);
                c->score = count_pointers(img, c->base, span);
                i++;
        }
        have_best = pick_base(cand, n_cand, &best);

        a_ok = handler >= a && handler < (uint64_t)a + span;
        if (a_ok)
                score_a = count_pointers(img, a, span);

        if (!a_ok) {
                if (have_best) {
                        describe_base(where, sizeof(where), (uint32_t)best.base, t->flash_base);
                        wrong_base_advice(advice, sizeof(advice), best.base, t);
                        return codec_message(ret_message, -ENOEXEC,
                                             "the image is built for %s but would be written at 0x%08x (its "
                                             "reset vector 0x%08x lies outside the written range): %s",
                                             where, a, reset, advice);
                }
                return codec_message(
                        ret_message, -ENOEXEC,
                        "the image's reset vector 0x%08x lies outside the written range 0x%08x-0x%08" PRIx64
                        ": the image is built for another address",
                        reset, a, (uint64_t)a + span - 1);
        }
        /* A clear majority, not noise: genuine images have many pointers into
         * their own code below any wrong base, and few past their end. The
         * two windows overlap, so the difference is measured against the
         * part they do not share (a 16 KiB shift of a 200 KiB image moves
         * only a few percent of its pointers). */
        if (have_best && best.score > score_a + MAX((size_t)8, score_a / 32)) {
                describe_base(where, sizeof(where), (uint32_t)best.base, t->flash_base);
                wrong_base_advice(advice, sizeof(advice), best.base, t);
                return codec_message(
                        ret_message, -ENOEXEC,
                        "the image is built for %s but would be written at 0x%08x (%zu of its "
                        "pointers point into the image when it sits at 0x%08x, %zu at 0x%08x): %s",
                        where, a, best.score, (uint32_t)best.base, score_a, a, advice);
        }
        return 0;
}

/* ---- bootloader region ---- */

int image_check_bootloader_region(const FlashImage *img, const ImageCheckTarget *t, char **ret_message)
{
        if (!img || !t)
                return -EINVAL;
        if (t->app_offset == 0 && t->app_offset_unknown && t->flash_size > 0) {
                if (!flash_image_touches(img, t->flash_base, 1))
                        return codec_message(ret_message, IMAGE_CHECK_SKIPPED,
                                             "the board is not identified; the image leaves the start of "
                                             "flash alone");
                return codec_message(ret_message, -EPERM,
                                     "the image would be written at the start of flash (0x%08x), where a "
                                     "bootloader lives; the board is not identified, so flashd cannot tell "
                                     "whether one is there. A Klipper image belongs at the board's "
                                     "application address (rebuild it with the board's bootloader offset); "
                                     "to replace the bootloader itself (installing Katapult), add --force "
                                     "bootloader-region",
                                     t->flash_base);
        }
        if (t->app_offset == 0)
                return codec_message(ret_message, IMAGE_CHECK_SKIPPED, "the board has no bootloader region");
        if (!flash_image_touches(img, t->flash_base, t->app_offset))
                return 0;
        /* An explicit --address is not consent: a wrong-offset refusal used
         * to suggest one, and following it erased the stock bootloader. */
        return codec_message(ret_message, -EPERM,
                             "the image would overwrite the board's bootloader at 0x%08x-0x%08" PRIx64
                             " (%u KiB); that leaves a board that only BOOT0 and the ROM bootloader can "
                             "recover. A Klipper image belongs at 0x%08" PRIx64
                             " (rebuild it with the board's bootloader offset); to replace the bootloader "
                             "itself (installing Katapult), add --force bootloader-region",
                             t->flash_base, (uint64_t)t->flash_base + t->app_offset - 1,
                             t->app_offset / 1024, (uint64_t)t->flash_base + t->app_offset);
}

/* ---- Klipper data dictionary ---- */

/* Bytes one scan may inflate in total: a crafted image full of zlib streams
 * must not keep the daemon busy for long. */
#define KLIPPER_DICT_SCAN_BUDGET (8U * 1024U * 1024U)

/* Inflate one zlib stream starting at buf; -EBADMSG when it is not one or
 * does not start like a JSON object. */
static int inflate_at(const uint8_t *buf, size_t len, size_t *budget, char **ret, size_t *ret_len)
{
        _cleanup_free_ char *out = NULL;
        size_t allocated = 0, used = 0;
        z_stream zs = {};
        int zr;

        if (inflateInit(&zs) != Z_OK)
                return -ENOMEM;
        zs.next_in = (Bytef *)buf;
        zs.avail_in = (uInt)MIN(len, (size_t)UINT32_MAX);
        do {
                if (used == allocated) {
                        size_t n = allocated ? allocated * 2 : 16384;
                        char *p;

                        if (allocated >= KLIPPER_DICT_MAX_SIZE) {
                                inflateEnd(&zs);
                                return -EFBIG;
                        }
                        n = MIN(n, (size_t)KLIPPER_DICT_MAX_SIZE);
                        p = realloc(out, n + 1);
                        if (!p) {
                                inflateEnd(&zs);
                                return -ENOMEM;
                        }
                        out = p;
                        allocated = n;
                }
                zs.next_out = (Bytef *)out + used;
                zs.avail_out = (uInt)(allocated - used);
                zr = inflate(&zs, Z_NO_FLUSH);
                *budget -= MIN(*budget, allocated - zs.avail_out - used);
                used = allocated - zs.avail_out;
                if (used > 0 && out[0] != '{')
                        zr = Z_DATA_ERROR;
                else if (*budget == 0)
                        zr = Z_BUF_ERROR;
        } while (zr == Z_OK);
        inflateEnd(&zs);
        if (zr != Z_STREAM_END)
                return -EBADMSG;
        out[used] = 0;
        *ret = TAKE_PTR(out);
        *ret_len = used;
        return 0;
}

static bool is_klipper_dictionary(const char *json, size_t len)
{
        json_auto_t *root = json_loadb(json, len, 0, NULL);
        json_t *app;

        if (!json_is_object(root))
                return false;
        app = json_object_get(root, "app");
        return json_is_string(app) && streq(json_string_value(app), "Klipper");
}

int klipper_dictionary_extract(const uint8_t *buf, size_t len, char **ret_json, size_t *ret_offset)
{
        size_t budget = KLIPPER_DICT_SCAN_BUDGET;

        if (!buf)
                return -ENOENT;
        for (size_t i = 0; i + 2 <= len && budget > 0; i++) {
                _cleanup_free_ char *json = NULL;
                size_t json_len = 0;
                int r;

                /* RFC 1950: CM 8 with a 32 KiB window, FCHECK makes CMF*256+FLG a
                 * multiple of 31, no preset dictionary. */
                if (buf[i] != 0x78 || ((buf[i] << 8) | buf[i + 1]) % 31 != 0 || (buf[i + 1] & 0x20))
                        continue;
                r = inflate_at(buf + i, len - i, &budget, &json, &json_len);
                if (r == -ENOMEM)
                        return r;
                if (r < 0 || json_len == 0 || json[0] != '{')
                        continue;
                if (strlen(json) != json_len || !is_klipper_dictionary(json, json_len))
                        continue;
                if (ret_json)
                        *ret_json = TAKE_PTR(json);
                if (ret_offset)
                        *ret_offset = i;
                return 0;
        }
        return -ENOENT;
}

int klipper_dictionary_find(const FlashImage *img, char **ret_mcu, char **ret_version)
{
        if (!img)
                return -EINVAL;
        for (size_t i = 0; i < img->n_segments; i++) {
                _cleanup_free_ char *json = NULL;
                json_auto_t *root = NULL;
                json_t *mcu, *version;
                char *m = NULL, *v = NULL;
                int r;

                r = klipper_dictionary_extract(img->segments[i].data, img->segments[i].size, &json, NULL);
                if (r == -ENOENT)
                        continue;
                if (r < 0)
                        return r;
                root = json_loads(json, 0, NULL);
                if (!root)
                        return -ENOMEM;
                mcu = json_object_get(json_object_get(root, "config"), "MCU");
                version = json_object_get(root, "version");
                if (json_is_string(mcu) && !(m = strdup(json_string_value(mcu))))
                        return -ENOMEM;
                if (json_is_string(version) && !(v = strdup(json_string_value(version)))) {
                        free(m);
                        return -ENOMEM;
                }
                if (ret_mcu)
                        *ret_mcu = m;
                else
                        free(m);
                if (ret_version)
                        *ret_version = v;
                else
                        free(v);
                return 0;
        }
        return -ENOENT;
}

int image_check_mcu(const FlashImage *img, const ImageCheckTarget *t, char **ret_message)
{
        _cleanup_free_ char *mcu = NULL, *version = NULL;
        int r;

        if (!img || !t)
                return -EINVAL;
        if (!t->mcu)
                return codec_message(ret_message, IMAGE_CHECK_SKIPPED, "the board's MCU is not known");
        r = klipper_dictionary_find(img, &mcu, &version);
        if (r == -ENOENT)
                return codec_message(ret_message, IMAGE_CHECK_SKIPPED,
                                     "the image has no Klipper data dictionary");
        if (r < 0)
                return r;
        if (!mcu)
                return codec_message(ret_message, IMAGE_CHECK_SKIPPED,
                                     "the image's Klipper data dictionary names no MCU");
        if (strcasecmp(mcu, t->mcu) != 0)
                return codec_message(
                        ret_message, -EMEDIUMTYPE,
                        "the image is Klipper %s built for %s, but the board has an %s: run `make "
                        "menuconfig` and select the board's micro-controller",
                        strna(version), mcu, t->mcu);
        return 0;
}

/* ---- all ---- */

int image_check_one(ImageCheck c, const FlashImage *img, const ImageCheckTarget *t, char **ret_message)
{
        switch (c) {
        case IMAGE_CHECK_FIT:
                return image_check_fit(img, t, ret_message);
        case IMAGE_CHECK_VECTOR_TABLE:
                return image_check_vector_table(img, t, ret_message);
        case IMAGE_CHECK_BOOTLOADER_REGION:
                return image_check_bootloader_region(img, t, ret_message);
        case IMAGE_CHECK_MCU:
                return image_check_mcu(img, t, ret_message);
        case _IMAGE_CHECK_MAX:
        case _IMAGE_CHECK_INVALID:
                break;
        }
        return -EINVAL;
}

void image_check_results_clear(ImageCheckResult *results)
{
        for (size_t i = 0; results && i < _IMAGE_CHECK_MAX; i++) {
                free(results[i].message);
                results[i] = (ImageCheckResult){};
        }
}

int image_check_run(const FlashImage *img, const ImageCheckTarget *t, ImageCheckFunc check, void *userdata,
                    unsigned force, ImageCheck *ret_failed, char **ret_message, ImageCheckResult *results)
{
        int first = 0;

        if (!img || !t || !check)
                return -EINVAL;
        for (int c = 0; c < _IMAGE_CHECK_MAX; c++) {
                _cleanup_free_ char *message = NULL;
                bool forced;
                int r;

                r = check((ImageCheck)c, img, t, userdata, &message);
                if (r == -ENOMEM || r == -EINVAL)
                        return r;
                forced = r < 0 && (force & (1U << c));
                if (r < 0 && !forced && first == 0) {
                        first = r;
                        if (ret_failed)
                                *ret_failed = (ImageCheck)c;
                        if (ret_message)
                                *ret_message = message ? strdup(message) : NULL;
                }
                if (results)
                        results[c] = (ImageCheckResult){
                                .result = r,
                                .forced = forced,
                                .message = TAKE_PTR(message),
                        };
        }
        return first;
}

static int check_one(ImageCheck c, const FlashImage *img, const ImageCheckTarget *t, void *userdata,
                     char **ret_message)
{
        return image_check_one(c, img, t, ret_message);
}

int image_check_all(const FlashImage *img, const ImageCheckTarget *t, unsigned force, ImageCheck *ret_failed,
                    char **ret_message, ImageCheckResult *results)
{
        return image_check_run(img, t, check_one, NULL, force, ret_failed, ret_message, results);
}
