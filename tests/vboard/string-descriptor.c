/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdlib.h>
#include <string.h>

#include "util/macros.h"
#include "string-descriptor.h"

const uint16_t string_descriptor_garbage_tail[7] = {
        0xCC50, 0x01A8, 0x2E54, 0xBEBF, 0x4B7C, 0xB6EE, 0xCEF8
};

size_t string_descriptor_size(const char *s, size_t n_tail)
{
        return 2 + 2 * (strlen(s) + n_tail);
}

void string_descriptor_build(const char *s, uint8_t claimed_len, const uint16_t *tail, size_t n_tail,
                             uint8_t *buf)
{
        size_t n = strlen(s) + n_tail, pos = 2;

        buf[0] = claimed_len ? claimed_len : (uint8_t)MIN(2 + 2 * n, 254);
        buf[1] = 3;
        for (const char *p = s; *p; p++) {
                buf[pos++] = (uint8_t)*p;
                buf[pos++] = 0;
        }
        for (size_t i = 0; i < n_tail; i++) {
                buf[pos++] = tail[i] & 0xFF;
                buf[pos++] = tail[i] >> 8;
        }
}

size_t string_descriptor_dfu_layout(const char *layout, bool short_string, bool garbage_tail, uint8_t *buf,
                                    size_t size)
{
        size_t n_tail = garbage_tail ? ELEMENTSOF(string_descriptor_garbage_tail) : 0;
        size_t n = string_descriptor_size(layout, n_tail);
        uint8_t *full = malloc(n);

        if (!full)
                return 0;
        string_descriptor_build(layout, short_string ? STRING_DESCRIPTOR_SHORT_STRING_CLAIM : 0,
                                garbage_tail ? string_descriptor_garbage_tail : NULL, n_tail, full);
        n = MIN(n, size);
        memcpy(buf, full, n);
        free(full);
        return n;
}
