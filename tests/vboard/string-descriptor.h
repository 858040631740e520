/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The string descriptors the virtual boards send, with the ROM defects
 * some boards show. Pure: no I/O, shared by the usbdevfs glue
 * (usb-device.c) and the in-process DFU session test.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* U+CC50 U+01A8 U+2E54 U+BEBF U+4B7C U+B6EE U+CEF8, as lsusb showed them
 * after the layout string on the board of the seed report (garbage-tail). */
extern const uint16_t string_descriptor_garbage_tail[7];

/* The F42x ROM defect (short-string): bLength 166, the dual-bank string's
 * length, while only the real bytes arrive. */
#define STRING_DESCRIPTOR_SHORT_STRING_CLAIM 166

/* Bytes string_descriptor_build() writes for `s` plus n_tail units. */
size_t string_descriptor_size(const char *s, size_t n_tail);

/*
 * USB 2.0 9.6.7: UTF-16LE string descriptor of the ASCII string `s`, with
 * `tail` units appended after the text. `claimed_len` (0: honest, at most
 * 254) overrides bLength. Writes string_descriptor_size() bytes to buf.
 */
void string_descriptor_build(const char *s, uint8_t claimed_len, const uint16_t *tail, size_t n_tail,
                             uint8_t *buf);

/* The DfuSe layout string (alt 0 name) with the board's defects. Returns
 * the bytes written, at most `size`. */
size_t string_descriptor_dfu_layout(const char *layout, bool short_string, bool garbage_tail, uint8_t *buf,
                                    size_t size);
