/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/utf8.h"

/* Length of the well-formed sequence at s (at most n bytes), 0 if none. */
static size_t utf8_sequence(const unsigned char *s, size_t n)
{
        unsigned char c = s[0];
        size_t len;
        uint32_t cp, min;

        if (c < 0x80)
                return 1;
        if (c >= 0xc2 && c <= 0xdf)
                len = 2, cp = c & 0x1f, min = 0x80;
        else if (c >= 0xe0 && c <= 0xef)
                len = 3, cp = c & 0x0f, min = 0x800;
        else if (c >= 0xf0 && c <= 0xf4)
                len = 4, cp = c & 0x07, min = 0x10000;
        else
                return 0;
        if (len > n)
                return 0;
        for (size_t i = 1; i < len; i++) {
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
                cp = (cp << 6) | (s[i] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                return 0;
        return len;
}

bool utf8_is_valid(const char *s, size_t n)
{
        const unsigned char *p = (const unsigned char *)s;

        for (size_t i = 0; i < n;) {
                size_t k = p[i] ? utf8_sequence(p + i, n - i) : 0;
                if (k == 0)
                        return false;
                i += k;
        }
        return true;
}

static const char replacement[] = "\xef\xbf\xbd"; /* U+FFFD */

/* Write the sanitized form of s into out (room for `size` bytes with the
 * NUL); returns the length it needs. */
static size_t sanitize(const char *s, char *out, size_t size)
{
        const unsigned char *p = (const unsigned char *)s;
        size_t n = strlen(s), o = 0;

        for (size_t i = 0; i < n;) {
                size_t k = utf8_sequence(p + i, n - i);
                const char *src = k ? s + i : replacement;
                size_t len = k ? k : 3;
                if (out && o + len < size)
                        memcpy(out + o, src, len);
                else if (out && o < size)
                        size = o + 1; /* stop at a whole character */
                o += len;
                i += k ? k : 1;
        }
        if (out && size > 0)
                out[o < size - 1 ? o : size - 1] = '\0';
        return o;
}

char *utf8_make_valid(const char *s)
{
        size_t need = sanitize(s, NULL, 0) + 1;
        char *out = malloc(need);

        if (out)
                sanitize(s, out, need);
        return out;
}

void utf8_make_valid_in_place(char *s, size_t size)
{
        if (utf8_is_valid(s, strlen(s)))
                return;
        char *copy = strdup(s);
        if (!copy) {
                s[0] = '\0';
                return;
        }
        sanitize(copy, s, size);
        free(copy);
}

json_t *json_string_sanitized(const char *s)
{
        if (!s)
                return json_null();
        if (utf8_is_valid(s, strlen(s)))
                return json_string(s);
        char *v = utf8_make_valid(s);
        if (!v)
                return NULL;
        json_t *j = json_string(v);
        free(v);
        return j;
}
