/* SPDX-License-Identifier: LGPL-2.1-or-later */
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
