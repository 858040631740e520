/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * USB string descriptors (USB 2.0 §9.6.7): bLength, bDescriptorType 0x03,
 * then UTF-16LE code units. A pure codec: no I/O, no logging.
 *
 * Real devices lie about bLength (the STM32F42x ROM claims 166 bytes and
 * delivers 112), so the descriptor is decoded by the bytes actually received.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Decode `received` bytes of a raw string descriptor into a NUL-terminated
 * UTF-8 string (malloc'd). The length used is min(bLength, received); when
 * bLength claims more than was received, or is odd, or is below 2, the
 * decoder uses what is there and sets *ret_patched (optional). An odd
 * trailing byte is dropped, unpaired surrogates become U+FFFD, and a U+0000
 * code unit ends the string (padding). Returns 0, or -EBADMSG when the
 * buffer is not a string descriptor (fewer than 2 bytes, wrong type).
 */
int usb_string_descriptor_decode(const uint8_t *buf, size_t received, char **ret_utf8, bool *ret_patched);
