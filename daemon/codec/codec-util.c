/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "codec/codec-util.h"

int codec_message(char **ret_message, int r, const char *fmt, ...)
{
        va_list ap;
        char *s = NULL;

        if (!ret_message)
                return r;
        va_start(ap, fmt);
        if (vasprintf(&s, fmt, ap) < 0)
                s = NULL;
        va_end(ap);
        free(*ret_message);
        *ret_message = s;
        return r;
}

const char *codec_format_size(char buf[static CODEC_SIZE_MAX], uint64_t bytes)
{
        static const struct {
                uint64_t factor;
                const char *name;
        } units[] = { { 1ull << 30, "GiB" }, { 1ull << 20, "MiB" }, { 1ull << 10, "KiB" } };

        for (size_t i = 0; i < ELEMENTSOF(units); i++) {
                uint64_t f = units[i].factor, tenths;
                if (bytes < f)
                        continue;
                if (bytes % f == 0)
                        snprintf(buf, CODEC_SIZE_MAX, "%" PRIu64 " %s", bytes / f, units[i].name);
                else {
                        /* integers: the same rounding on every libc */
                        tenths = (bytes * 10 + f / 2) / f;
                        snprintf(buf, CODEC_SIZE_MAX, "%" PRIu64 ".%" PRIu64 " %s", tenths / 10, tenths % 10,
                                 units[i].name);
                }
                return buf;
        }
        snprintf(buf, CODEC_SIZE_MAX, "%" PRIu64 " bytes", bytes);
        return buf;
}
