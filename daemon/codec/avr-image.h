/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Image checks for AVR boards (Klipper's out/klipper.elf.hex, flash from
 * address 0). Pure. The same ImageCheck set as the Cortex-M boards:
 *   fit               inside the chip's flash
 *   vector-table      the reset vector at 0 is a JMP or RJMP (what avr-gcc
 *                     puts first in every application)
 *   bootloader-region nothing in the boot section at the top of flash;
 *                     never forced: the serial bootloaders cannot write
 *                     their own section
 *   mcu               Klipper's config.MCU equals the board's
 */

#include <stdint.h>

#include "codec/flash-image.h"
#include "codec/image-check.h"

int avr_check_vector_table(const FlashImage *img, char **ret_message);
int avr_check_boot_section(const FlashImage *img, uint32_t flash_size, uint32_t boot_size,
                           char **ret_message);

/* As image_check_all(); t->flash_base must be 0. */
int avr_check_all(const FlashImage *img, const ImageCheckTarget *t, uint32_t boot_size, unsigned force,
                  ImageCheck *ret_failed, char **ret_message, ImageCheckResult *results);
