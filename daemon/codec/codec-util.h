/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Small helpers shared by the codecs and the board database: the optional
 * human-readable message out-parameter, hex digits and little-endian reads.
 */

#include <stdint.h>

#include "util/macros.h"

/* Replace *ret_message (if ret_message is not NULL) with a formatted,
 * malloc'd sentence, and return r, so `return codec_message(ret, -EBADMSG, ...)`. */
int codec_message(char **ret_message, int r, const char *fmt, ...) _printf_(3, 4);

/* "16 MiB", "992 KiB", "20.5 MiB", "12 bytes": sizes as people read them in
 * messages (binary units; one decimal unless exact). Returns buf. */
#define CODEC_SIZE_MAX 32
const char *codec_format_size(char buf[static CODEC_SIZE_MAX], uint64_t bytes);

/* 0..15 for [0-9a-fA-F], else -1. */
static inline int codec_unhex(int c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

static inline uint16_t codec_le16(const uint8_t *p)
{
        return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t codec_le32(const uint8_t *p)
{
        return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
