/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "codec/codec-util.h"
#include "codec/flash-image.h"
#include "util/macros.h"

/* UM0391 (DfuSe file format) sizes */
#define DFUSE_PREFIX_SIZE         11
#define DFUSE_TARGET_PREFIX_SIZE  274
#define DFUSE_ELEMENT_HEADER_SIZE 8
#define DFUSE_BCD_DFU             0x011a

static const char *const format_table[_FLASH_IMAGE_FORMAT_MAX] = {
        [FLASH_IMAGE_FORMAT_BIN] = "bin",
        [FLASH_IMAGE_FORMAT_IHEX] = "hex",
        [FLASH_IMAGE_FORMAT_DFUSE] = "dfu",
        [FLASH_IMAGE_FORMAT_DFU_RAW] = "dfu-raw",
};

const char *flash_image_format_to_string(FlashImageFormat f)
{
        if (f < 0 || f >= _FLASH_IMAGE_FORMAT_MAX)
                return NULL;
        return format_table[f];
}

FlashImageFormat flash_image_format_from_string(const char *s)
{
        if (!s)
                return _FLASH_IMAGE_FORMAT_INVALID;
        if (streq(s, "ihex"))
                return FLASH_IMAGE_FORMAT_IHEX;
        for (int i = 0; i < _FLASH_IMAGE_FORMAT_MAX; i++)
                if (streq(format_table[i], s))
                        return (FlashImageFormat)i;
        return _FLASH_IMAGE_FORMAT_INVALID;
}

int flash_image_new(FlashImage **ret, FlashImageFormat format)
{
        FlashImage *img;

        if (!ret)
                return -EINVAL;
        img = calloc(1, sizeof(*img));
        if (!img)
                return -ENOMEM;
        img->format = format;
        *ret = img;
        return 0;
}

FlashImage *flash_image_free(FlashImage *img)
{
        if (!img)
                return NULL;
        for (size_t i = 0; i < img->n_segments; i++)
                free(img->segments[i].data);
        free(img->segments);
        free(img);
        return NULL;
}

/* Grow a segment's buffer geometrically: Intel HEX adds 16 bytes at a time. */
static int segment_reserve(FlashSegment *s, size_t want)
{
        size_t n;
        uint8_t *d;

        if (want <= s->allocated)
                return 0;
        n = MAX(want, s->allocated * 2);
        n = MAX(n, (size_t)256);
        d = realloc(s->data, n);
        if (!d)
                return -ENOMEM;
        s->data = d;
        s->allocated = n;
        return 0;
}

static int image_reserve_segments(FlashImage *img, size_t want)
{
        size_t n;
        FlashSegment *s;

        if (want <= img->n_allocated)
                return 0;
        n = MAX(want, img->n_allocated * 2);
        n = MAX(n, (size_t)8);
        s = reallocarray(img->segments, n, sizeof(FlashSegment));
        if (!s)
                return -ENOMEM;
        img->segments = s;
        img->n_allocated = n;
        return 0;
}

static void image_remove_segment(FlashImage *img, size_t i)
{
        free(img->segments[i].data);
        memmove(img->segments + i, img->segments + i + 1, (img->n_segments - i - 1) * sizeof(FlashSegment));
        img->n_segments--;
}

/* Index of the first segment starting above `address`. */
static size_t image_upper_bound(const FlashImage *img, uint32_t address)
{
        size_t lo = 0, hi = img->n_segments;

        /* Fast path: appending in address order. */
        if (hi > 0 && img->segments[hi - 1].address <= address)
                return hi;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (img->segments[mid].address <= address)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

int flash_image_add(FlashImage *img, uint32_t address, const void *data, size_t size)
{
        uint64_t end = (uint64_t)address + size;
        FlashSegment *prev = NULL, *next = NULL;
        size_t i;
        int r;

        if (!img || (!data && size > 0))
                return -EINVAL;
        if (size == 0)
                return 0;
        if (end > (uint64_t)UINT32_MAX + 1)
                return -ERANGE;
        if (size > FLASH_IMAGE_MAX_SIZE || img->size + size > FLASH_IMAGE_MAX_SIZE)
                return -EFBIG;

        /* Make room first so that pointers below stay valid. */
        r = image_reserve_segments(img, img->n_segments + 1);
        if (r < 0)
                return r;

        i = image_upper_bound(img, address);
        if (i > 0)
                prev = &img->segments[i - 1];
        if (i < img->n_segments)
                next = &img->segments[i];
        if (prev && (uint64_t)prev->address + prev->size > address)
                return -EEXIST;
        if (next && end > next->address)
                return -EEXIST;

        if (prev && (uint64_t)prev->address + prev->size == address) {
                size_t extra = next && end == next->address ? next->size : 0;

                r = segment_reserve(prev, prev->size + size + extra);
                if (r < 0)
                        return r;
                memcpy(prev->data + prev->size, data, size);
                prev->size += size;
                if (extra > 0) {
                        memcpy(prev->data + prev->size, next->data, extra);
                        prev->size += extra;
                        image_remove_segment(img, i);
                }
        } else if (next && end == next->address) {
                FlashSegment merged = { .address = address };

                r = segment_reserve(&merged, size + next->size);
                if (r < 0)
                        return r;
                memcpy(merged.data, data, size);
                memcpy(merged.data + size, next->data, next->size);
                merged.size = size + next->size;
                free(next->data);
                *next = merged;
        } else {
                FlashSegment seg = { .address = address };

                r = segment_reserve(&seg, size);
                if (r < 0)
                        return r;
                memcpy(seg.data, data, size);
                seg.size = size;
                memmove(img->segments + i + 1, img->segments + i,
                        (img->n_segments - i) * sizeof(FlashSegment));
                img->segments[i] = seg;
                img->n_segments++;
        }
        img->size += size;
        return 0;
}

static int add_error(int r, char **ret_error, const char *what, uint32_t address, size_t size)
{
        switch (r) {
        case -EEXIST:
                return codec_message(ret_error, r,
                                     "%s: data at 0x%08x (%zu bytes) overlaps data given earlier", what,
                                     address, size);
        case -EFBIG: {
                char max[CODEC_SIZE_MAX];
                return codec_message(ret_error, r,
                                     "%s: the image holds more than %s, the most flashd accepts", what,
                                     codec_format_size(max, FLASH_IMAGE_MAX_SIZE));
        }
        case -ERANGE:
                return codec_message(ret_error, r,
                                     "%s: data at 0x%08x (%zu bytes) runs past the 32-bit address space",
                                     what, address, size);
        default:
                return r;
        }
}

FlashImageFormat flash_image_get_format(const FlashImage *img)
{
        return img ? img->format : _FLASH_IMAGE_FORMAT_INVALID;
}

uint32_t flash_image_get_address(const FlashImage *img)
{
        return img && img->n_segments > 0 ? img->segments[0].address : 0;
}

uint64_t flash_image_get_end(const FlashImage *img)
{
        const FlashSegment *last;

        if (!img || img->n_segments == 0)
                return 0;
        last = &img->segments[img->n_segments - 1];
        return (uint64_t)last->address + last->size;
}

size_t flash_image_get_size(const FlashImage *img)
{
        return img ? img->size : 0;
}

int flash_image_flatten(const FlashImage *img, uint32_t base, uint8_t **ret, size_t *ret_size)
{
        uint64_t span;
        uint8_t *buf;

        if (!img || img->n_segments == 0)
                return -EINVAL;
        if (flash_image_get_address(img) < base)
                return -ERANGE;
        span = flash_image_get_end(img) - base;
        if (span > FLASH_IMAGE_MAX_SIZE)
                return -EFBIG;
        buf = malloc((size_t)span);
        if (!buf)
                return -ENOMEM;
        memset(buf, 0xff, (size_t)span);
        for (size_t i = 0; i < img->n_segments; i++)
                memcpy(buf + (img->segments[i].address - base), img->segments[i].data,
                       img->segments[i].size);
        *ret = buf;
        *ret_size = (size_t)span;
        return 0;
}

const uint8_t *flash_image_find(const FlashImage *img, uint32_t address, size_t size)
{
        size_t i;
        const FlashSegment *s;

        if (!img || img->n_segments == 0)
                return NULL;
        i = image_upper_bound(img, address);
        if (i == 0)
                return NULL;
        s = &img->segments[i - 1];
        if ((uint64_t)address + size > (uint64_t)s->address + s->size)
                return NULL;
        return s->data + (address - s->address);
}

bool flash_image_touches(const FlashImage *img, uint64_t address, uint64_t size)
{
        if (!img || size == 0)
                return false;
        for (size_t i = 0; i < img->n_segments; i++) {
                uint64_t a = img->segments[i].address, e = a + img->segments[i].size;
                if (a < address + size && address < e)
                        return true;
        }
        return false;
}

/* ---- raw binary ---- */

int flash_image_parse_bin(const void *buf, size_t len, uint32_t address, FlashImage **ret, char **ret_error)
{
        _cleanup_(flash_image_freep) FlashImage *img = NULL;
        int r;

        if (!ret || (!buf && len > 0))
                return -EINVAL;
        if (len == 0)
                return codec_message(ret_error, -ENODATA, "the image is empty");
        r = flash_image_new(&img, FLASH_IMAGE_FORMAT_BIN);
        if (r < 0)
                return r;
        r = flash_image_add(img, address, buf, len);
        if (r < 0)
                return add_error(r, ret_error, "binary image", address, len);
        *ret = TAKE_PTR(img);
        return 0;
}

/* ---- Intel HEX ---- */

static bool is_space(char c)
{
        return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int flash_image_parse_ihex(const void *buf, size_t len, FlashImage **ret, char **ret_error)
{
        _cleanup_(flash_image_freep) FlashImage *img = NULL;
        const char *s = buf;
        size_t pos = 0, line = 1;
        uint32_t base = 0;
        bool segment_mode = false, eof = false;
        int r;

        if (!ret || (!buf && len > 0))
                return -EINVAL;
        if (len > FLASH_IMAGE_MAX_INPUT)
                return codec_message(ret_error, -EFBIG, "the Intel HEX file is larger than %s",
                                     codec_format_size((char[CODEC_SIZE_MAX]){}, FLASH_IMAGE_MAX_INPUT));
        r = flash_image_new(&img, FLASH_IMAGE_FORMAT_IHEX);
        if (r < 0)
                return r;

        while (pos < len && !eof) {
                uint8_t rec[5 + 255];
                size_t n = 0;
                uint8_t sum = 0, count, type;
                uint32_t offset;

                if (is_space(s[pos])) {
                        if (s[pos] == '\n')
                                line++;
                        pos++;
                        continue;
                }
                if (s[pos] != ':')
                        return codec_message(ret_error, -EBADMSG,
                                             "Intel HEX line %zu: a record must start with ':'", line);
                pos++;
                while (pos < len && s[pos] != '\r' && s[pos] != '\n') {
                        int hi, lo;

                        if (pos + 1 >= len || (hi = codec_unhex(s[pos])) < 0 ||
                            (lo = codec_unhex(s[pos + 1])) < 0)
                                return codec_message(ret_error, -EBADMSG,
                                                     "Intel HEX line %zu: not a pair of hex digits", line);
                        if (n >= sizeof(rec))
                                return codec_message(ret_error, -EBADMSG,
                                                     "Intel HEX line %zu: record too long", line);
                        rec[n++] = (uint8_t)(hi << 4 | lo);
                        pos += 2;
                }
                if (n < 5)
                        return codec_message(ret_error, -EBADMSG, "Intel HEX line %zu: record too short",
                                             line);
                count = rec[0];
                if (n != (size_t)count + 5)
                        return codec_message(
                                ret_error, -EBADMSG,
                                "Intel HEX line %zu: byte count %u does not match the record length", line,
                                count);
                for (size_t i = 0; i < n; i++)
                        sum = (uint8_t)(sum + rec[i]);
                if (sum != 0)
                        return codec_message(ret_error, -EBADMSG, "Intel HEX line %zu: checksum mismatch",
                                             line);
                offset = (uint32_t)rec[1] << 8 | rec[2];
                type = rec[3];

                switch (type) {
                case 0x00: /* data */
                        if (segment_mode && offset + count > 0x10000) {
                                /* 16-bit segment addressing wraps inside the segment. */
                                size_t first = 0x10000 - offset;
                                r = flash_image_add(img, base + offset, rec + 4, first);
                                if (r >= 0)
                                        r = flash_image_add(img, base, rec + 4 + first, count - first);
                        } else {
                                if ((uint64_t)base + offset + count > (uint64_t)UINT32_MAX + 1)
                                        return codec_message(ret_error, -ERANGE,
                                                             "Intel HEX line %zu: data runs past the 32-bit "
                                                             "address space",
                                                             line);
                                r = flash_image_add(img, base + offset, rec + 4, count);
                        }
                        if (r < 0) {
                                _cleanup_free_ char *what = NULL;
                                if (asprintf(&what, "Intel HEX line %zu", line) < 0)
                                        return -ENOMEM;
                                return add_error(r, ret_error, what, base + offset, count);
                        }
                        break;
                case 0x01: /* end of file */
                        if (count != 0)
                                return codec_message(ret_error, -EBADMSG,
                                                     "Intel HEX line %zu: malformed end-of-file record",
                                                     line);
                        eof = true;
                        break;
                case 0x02: /* extended segment address */
                        if (count != 2)
                                return codec_message(
                                        ret_error, -EBADMSG,
                                        "Intel HEX line %zu: malformed extended segment address", line);
                        base = ((uint32_t)rec[4] << 8 | rec[5]) << 4;
                        segment_mode = true;
                        break;
                case 0x03: /* start segment address (CS:IP) */
                        if (count != 4)
                                return codec_message(ret_error, -EBADMSG,
                                                     "Intel HEX line %zu: malformed start segment address",
                                                     line);
                        img->has_entry = true;
                        img->entry =
                                (((uint32_t)rec[4] << 8 | rec[5]) << 4) + ((uint32_t)rec[6] << 8 | rec[7]);
                        break;
                case 0x04: /* extended linear address */
                        if (count != 2)
                                return codec_message(ret_error, -EBADMSG,
                                                     "Intel HEX line %zu: malformed extended linear address",
                                                     line);
                        base = ((uint32_t)rec[4] << 8 | rec[5]) << 16;
                        segment_mode = false;
                        break;
                case 0x05: /* start linear address */
                        if (count != 4)
                                return codec_message(ret_error, -EBADMSG,
                                                     "Intel HEX line %zu: malformed start linear address",
                                                     line);
                        img->has_entry = true;
                        img->entry = codec_le32((const uint8_t[]){ rec[7], rec[6], rec[5], rec[4] });
                        break;
                default:
                        return codec_message(ret_error, -EBADMSG,
                                             "Intel HEX line %zu: unknown record type %02x", line, type);
                }
        }

        if (!eof)
                return codec_message(
                        ret_error, -EBADMSG,
                        "Intel HEX file has no end-of-file record: it is truncated or not Intel HEX");
        /* Only white space (or DOS end-of-file / NUL padding) may follow. */
        for (; pos < len; pos++)
                if (!is_space(s[pos]) && s[pos] != 0x1a && s[pos] != 0)
                        return codec_message(ret_error, -EBADMSG,
                                             "Intel HEX file has data after its end-of-file record");
        if (img->size == 0)
                return codec_message(ret_error, -ENODATA, "the Intel HEX file holds no data");

        *ret = TAKE_PTR(img);
        return 0;
}

/* ---- DFU suffix and DfuSe ---- */

uint32_t dfu_suffix_crc(const void *buf, size_t len)
{
        uLong crc = crc32(0L, Z_NULL, 0);
        const uint8_t *p = buf;

        /* zlib's crc32() takes a uInt length; feed it in pieces. */
        while (len > 0) {
                uInt n = (uInt)MIN(len, (size_t)1 << 30);
                crc = crc32(crc, p, n);
                p += n;
                len -= n;
        }
        return ~(uint32_t)crc;
}

int dfu_suffix_parse(const void *buf, size_t len, DfuSuffix *ret, size_t *ret_payload_len, char **ret_error)
{
        const uint8_t *p = buf, *sfx;
        uint32_t crc, want;
        uint8_t blength;

        if (!buf || len < DFU_SUFFIX_LENGTH)
                return -ENOENT;
        sfx = p + len - DFU_SUFFIX_LENGTH;
        /* DFU 1.1 appendix B: the signature reads "UFD" in file order. */
        if (sfx[8] != 'U' || sfx[9] != 'F' || sfx[10] != 'D')
                return -ENOENT;
        blength = sfx[11];
        if (blength < DFU_SUFFIX_LENGTH || blength > len)
                return codec_message(ret_error, -EBADMSG, "DFU suffix length %u is invalid", blength);
        crc = codec_le32(sfx + 12);
        want = dfu_suffix_crc(p, len - 4);
        if (crc != want)
                return codec_message(
                        ret_error, -EBADMSG,
                        "DFU suffix CRC mismatch (file says 0x%08x, content gives 0x%08x): the file "
                        "is damaged",
                        crc, want);
        if (ret)
                *ret = (DfuSuffix){
                        .bcd_device = codec_le16(sfx + 0),
                        .id_product = codec_le16(sfx + 2),
                        .id_vendor = codec_le16(sfx + 4),
                        .bcd_dfu = codec_le16(sfx + 6),
                };
        if (ret_payload_len)
                *ret_payload_len = len - blength;
        return 0;
}

static int parse_dfuse_body(FlashImage *img, const uint8_t *p, size_t len, char **ret_error)
{
        uint32_t image_size;
        uint8_t n_targets;
        size_t pos = DFUSE_PREFIX_SIZE;
        int r;

        if (len < DFUSE_PREFIX_SIZE)
                return codec_message(ret_error, -EBADMSG, "DfuSe prefix is truncated");
        if (p[5] != 0x01)
                return codec_message(ret_error, -EBADMSG, "DfuSe file version %u is not supported (only 1)",
                                     p[5]);
        image_size = codec_le32(p + 6);
        n_targets = p[10];
        if (image_size != len)
                return codec_message(ret_error, -EBADMSG,
                                     "DfuSe prefix says %u bytes, the file has %zu before its suffix",
                                     image_size, len);

        for (unsigned t = 0; t < n_targets; t++) {
                const uint8_t *tp = p + pos;
                uint32_t target_size, n_elements;
                uint8_t alt;
                size_t tpos, tend;

                if (len - pos < DFUSE_TARGET_PREFIX_SIZE)
                        return codec_message(ret_error, -EBADMSG, "DfuSe target %u: prefix is truncated", t);
                if (memcmp(tp, "Target", 6) != 0)
                        return codec_message(ret_error, -EBADMSG, "DfuSe target %u: no \"Target\" signature",
                                             t);
                alt = tp[6];
                target_size = codec_le32(tp + 266);
                n_elements = codec_le32(tp + 270);
                pos += DFUSE_TARGET_PREFIX_SIZE;
                if (target_size > len - pos)
                        return codec_message(ret_error, -EBADMSG,
                                             "DfuSe target %u: size %u runs past the end of the file", t,
                                             target_size);
                if (alt != 0 && n_elements > 0)
                        return codec_message(
                                ret_error, -EOPNOTSUPP,
                                "DfuSe target %u is for alt setting %u; flashd writes only alt setting 0 "
                                "(internal flash)",
                                t, alt);
                tpos = pos;
                tend = pos + target_size;
                for (uint32_t e = 0; e < n_elements; e++) {
                        uint32_t address, size;

                        if (tend - tpos < DFUSE_ELEMENT_HEADER_SIZE)
                                return codec_message(ret_error, -EBADMSG,
                                                     "DfuSe target %u element %u: header is truncated", t,
                                                     e);
                        address = codec_le32(p + tpos);
                        size = codec_le32(p + tpos + 4);
                        tpos += DFUSE_ELEMENT_HEADER_SIZE;
                        if (size > tend - tpos)
                                return codec_message(
                                        ret_error, -EBADMSG,
                                        "DfuSe target %u element %u: %u bytes run past the target", t, e,
                                        size);
                        r = flash_image_add(img, address, p + tpos, size);
                        if (r < 0) {
                                _cleanup_free_ char *what = NULL;
                                if (asprintf(&what, "DfuSe target %u element %u", t, e) < 0)
                                        return -ENOMEM;
                                return add_error(r, ret_error, what, address, size);
                        }
                        tpos += size;
                }
                if (tpos != tend)
                        return codec_message(ret_error, -EBADMSG,
                                             "DfuSe target %u: its elements do not fill its size", t);
                pos = tend;
        }
        if (pos != len)
                return codec_message(ret_error, -EBADMSG,
                                     "DfuSe file has %zu unexpected bytes after its targets", len - pos);
        return 0;
}

int flash_image_parse_dfu(const void *buf, size_t len, bool has_address, uint32_t address, FlashImage **ret,
                          char **ret_error)
{
        _cleanup_(flash_image_freep) FlashImage *img = NULL;
        DfuSuffix suffix;
        size_t payload;
        bool dfuse;
        int r;

        if (!ret || (!buf && len > 0))
                return -EINVAL;
        if (len > FLASH_IMAGE_MAX_INPUT)
                return codec_message(ret_error, -EFBIG, "the DFU file is larger than %s",
                                     codec_format_size((char[CODEC_SIZE_MAX]){}, FLASH_IMAGE_MAX_INPUT));
        dfuse = len >= 5 && memcmp(buf, "DfuSe", 5) == 0;

        r = dfu_suffix_parse(buf, len, &suffix, &payload, ret_error);
        if (r == -ENOENT)
                return codec_message(ret_error, -EBADMSG,
                                     "the %s file has no DFU suffix: it is truncated or not a DFU file",
                                     dfuse ? "DfuSe" : "DFU");
        if (r < 0)
                return r;

        r = flash_image_new(&img, dfuse ? FLASH_IMAGE_FORMAT_DFUSE : FLASH_IMAGE_FORMAT_DFU_RAW);
        if (r < 0)
                return r;
        img->has_suffix = true;
        img->suffix = suffix;

        if (dfuse) {
                if (suffix.bcd_dfu != DFUSE_BCD_DFU)
                        return codec_message(ret_error, -EBADMSG,
                                             "DfuSe file has DFU version 0x%04x in its suffix, not 0x011a",
                                             suffix.bcd_dfu);
                r = parse_dfuse_body(img, buf, payload, ret_error);
                if (r < 0)
                        return r;
        } else {
                if (!has_address)
                        return codec_message(
                                ret_error, -EDESTADDRREQ,
                                "a plain DFU file carries no address: give the address to write it to");
                if (payload == 0)
                        return codec_message(ret_error, -ENODATA, "the DFU file holds no data");
                r = flash_image_add(img, address, buf, payload);
                if (r < 0)
                        return add_error(r, ret_error, "DFU file", address, payload);
        }
        if (img->size == 0)
                return codec_message(ret_error, -ENODATA, "the DfuSe file holds no data");

        *ret = TAKE_PTR(img);
        return 0;
}

/* ---- detection ---- */

static bool looks_like_ihex(const char *s, size_t len)
{
        size_t pos = 0, digits = 0;

        while (pos < len && is_space(s[pos]))
                pos++;
        if (pos >= len || s[pos] != ':')
                return false;
        for (pos++; pos < len && s[pos] != '\r' && s[pos] != '\n'; pos++, digits++)
                if (codec_unhex(s[pos]) < 0)
                        return false;
        return digits >= 10 && digits % 2 == 0;
}

static bool has_suffix_ci(const char *name, const char *suffix)
{
        size_t n = strlen(name), m = strlen(suffix);
        return n >= m && strcasecmp(name + n - m, suffix) == 0;
}

FlashImageFormat flash_image_detect(const void *buf, size_t len, const char *name_hint)
{
        if (buf && len >= 5 && memcmp(buf, "DfuSe", 5) == 0)
                return FLASH_IMAGE_FORMAT_DFUSE;
        if (buf && looks_like_ihex(buf, len))
                return FLASH_IMAGE_FORMAT_IHEX;
        if (buf && dfu_suffix_parse(buf, len, NULL, NULL, NULL) == 0)
                return FLASH_IMAGE_FORMAT_DFU_RAW;
        if (name_hint) {
                if (has_suffix_ci(name_hint, ".hex") || has_suffix_ci(name_hint, ".ihex") ||
                    has_suffix_ci(name_hint, ".ihx"))
                        return FLASH_IMAGE_FORMAT_IHEX;
                if (has_suffix_ci(name_hint, ".dfu"))
                        return FLASH_IMAGE_FORMAT_DFUSE;
        }
        return FLASH_IMAGE_FORMAT_BIN;
}

int flash_image_parse(const void *buf, size_t len, FlashImageFormat format, const char *name_hint,
                      bool has_address, uint32_t address, FlashImage **ret, char **ret_error)
{
        _cleanup_(flash_image_freep) FlashImage *img = NULL;
        int r = -EINVAL;

        if (!ret || (!buf && len > 0))
                return -EINVAL;
        if (len > FLASH_IMAGE_MAX_INPUT)
                return codec_message(ret_error, -EFBIG, "the image file is %s; flashd accepts at most %s",
                                     codec_format_size((char[CODEC_SIZE_MAX]){}, len),
                                     codec_format_size((char[CODEC_SIZE_MAX]){}, FLASH_IMAGE_MAX_INPUT));
        if (format < 0 || format >= _FLASH_IMAGE_FORMAT_MAX)
                format = flash_image_detect(buf, len, name_hint);

        switch (format) {
        case FLASH_IMAGE_FORMAT_BIN:
                if (!has_address)
                        return codec_message(
                                ret_error, -EDESTADDRREQ,
                                "a raw binary carries no address: give the address to write it to");
                r = flash_image_parse_bin(buf, len, address, &img, ret_error);
                break;
        case FLASH_IMAGE_FORMAT_IHEX:
                r = flash_image_parse_ihex(buf, len, &img, ret_error);
                break;
        case FLASH_IMAGE_FORMAT_DFUSE:
        case FLASH_IMAGE_FORMAT_DFU_RAW:
                r = flash_image_parse_dfu(buf, len, has_address, address, &img, ret_error);
                break;
        case _FLASH_IMAGE_FORMAT_MAX:
        case _FLASH_IMAGE_FORMAT_INVALID:
                return -EINVAL;
        }
        if (r < 0)
                return r;

        /* Files with their own addresses: an explicit address may only confirm them. */
        if (has_address &&
            (img->format == FLASH_IMAGE_FORMAT_IHEX || img->format == FLASH_IMAGE_FORMAT_DFUSE) &&
            flash_image_get_address(img) != address)
                return codec_message(
                        ret_error, -EINVAL,
                        "the %s file places its data at 0x%08x; the address 0x%08x contradicts it",
                        flash_image_format_to_string(img->format), flash_image_get_address(img), address);

        *ret = TAKE_PTR(img);
        return 0;
}
