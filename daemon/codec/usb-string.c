/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>

#include "codec/usb-string.h"

#define USB_DT_STRING 0x03

/* UTF-8 of one code point (RFC 3629); surrogates and out-of-range become U+FFFD. */
static size_t utf8_encode_codepoint(uint32_t cp, char out[static 4])
{
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
                cp = 0xFFFD;
        if (cp < 0x80) {
                out[0] = (char)cp;
                return 1;
        }
        if (cp < 0x800) {
                out[0] = (char)(0xC0 | (cp >> 6));
                out[1] = (char)(0x80 | (cp & 0x3F));
                return 2;
        }
        if (cp < 0x10000) {
                out[0] = (char)(0xE0 | (cp >> 12));
                out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
                out[2] = (char)(0x80 | (cp & 0x3F));
                return 3;
        }
        out[0] = (char)(0xF0 | (cp >> 18));
        out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[3] = (char)(0x80 | (cp & 0x3F));
        return 4;
}

int usb_string_descriptor_decode(const uint8_t *buf, size_t received, char **ret_utf8, bool *ret_patched)
{
        size_t blength, len, n_units, o = 0;
        bool patched = false;
        char *out;

        if (!buf || !ret_utf8)
                return -EINVAL;
        if (received < 2 || buf[1] != USB_DT_STRING)
                return -EBADMSG;

        blength = buf[0];
        if (blength >= 2 && blength <= received)
                len = blength;
        else {
                /* bLength claims more than arrived (or is nonsense): trust what arrived. */
                len = received;
                patched = true;
        }
        if (len % 2) {
                len--;
                patched = true;
        }

        n_units = (len - 2) / 2;
        /* Each UTF-16 unit yields at most 3 UTF-8 bytes (a pair yields 4 for 2 units). */
        out = malloc(n_units * 3 + 1);
        if (!out)
                return -ENOMEM;

        for (size_t i = 0; i < n_units; i++) {
                uint32_t u = (uint32_t)buf[2 + 2 * i] | ((uint32_t)buf[3 + 2 * i] << 8);
                uint32_t cp = u;

                if (u == 0)
                        break;
                if (u >= 0xD800 && u <= 0xDBFF) {
                        uint32_t lo = 0;
                        if (i + 1 < n_units)
                                lo = (uint32_t)buf[4 + 2 * i] | ((uint32_t)buf[5 + 2 * i] << 8);
                        if (lo >= 0xDC00 && lo <= 0xDFFF) {
                                cp = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
                                i++;
                        } else
                                cp = 0xFFFD;
                } else if (u >= 0xDC00 && u <= 0xDFFF)
                        cp = 0xFFFD;

                o += utf8_encode_codepoint(cp, out + o);
        }
        out[o] = 0;

        *ret_utf8 = out;
        if (ret_patched)
                *ret_patched = patched;
        return 0;
}
