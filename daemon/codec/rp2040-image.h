/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Safety checks for RP2040 images, run before anything is erased. They
 * take the place of the Cortex-M `vector-table` check of image-check.h
 * (same name, so `--force vector-table` still applies) and reuse its fit,
 * bootloader-region and mcu checks. Pure: no I/O, no logging.
 *
 * An image written at the start of flash (0x10000000) is what the boot
 * ROM runs: its first 256 bytes are the second-stage loader boot2, whose
 * last word is a CRC-32 (poly 0x04c11db7, init 0xffffffff, not reflected,
 * no final xor: CRC-32/MPEG-2) of bytes 0..251; the ROM refuses to boot
 * from flash when it does not match (RP2040 datasheet 2.8.1.3.1) and the
 * board then stays in BOOTSEL. boot2 jumps to the vector table at
 * 0x10000100. An application behind a bootloader (Katapult at
 * 0x10004000) starts with its vector table.
 */

#include <stddef.h>
#include <stdint.h>

#include "codec/flash-image.h"
#include "codec/image-check.h"

/* CRC-32/MPEG-2 over buf (check value of "123456789": 0x0376e6e7). */
uint32_t rp2040_boot2_crc(const void *buf, size_t len);

/* Build the ImageCheckTarget of an RP2040 with `flash_size` bytes of
 * QSPI flash and the application at `app_offset`. */
void rp2040_check_target(ImageCheckTarget *ret, uint32_t flash_size, uint32_t app_offset,
                         bool address_explicit);

/*
 * boot2 (when the image covers 0x10000000) and the vector table: initial
 * SP in SRAM (0x20000000..0x20042000), reset vector a Thumb address in
 * flash or SRAM. -ENOEXEC with a message on failure.
 */
int rp2040_check_vector_table(const FlashImage *img, const ImageCheckTarget *t, char **ret_message);

/* image_check_all() with the RP2040 vector-table check. */
int rp2040_check_all(const FlashImage *img, const ImageCheckTarget *t, unsigned force,
                     ImageCheck *ret_failed, char **ret_message, ImageCheckResult *results);
