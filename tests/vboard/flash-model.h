/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * NOR flash as on STM32: erase sets a whole sector to 0xFF, programming can
 * only clear bits, and programming a location that is not erased is an
 * error (the bits still get cleared, as on the chip). Pure model: no I/O.
 *
 * Option bytes are modelled with `nor = false`: writes replace the bytes.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct FlashSector {
        uint32_t address;
        uint32_t size;
} FlashSector;

typedef struct FlashModel {
        uint32_t base;
        uint32_t size;
        bool nor;
        uint8_t *data;
        FlashSector *sectors;
        size_t n_sectors;
        /* counters */
        uint64_t *erases_per_sector;
        uint64_t sector_erases;
        uint64_t mass_erases;
        uint64_t bytes_written;
        uint64_t program_errors;
} FlashModel;

/* `sectors` must be sorted and inside [base, base+size); may be empty
 * (no erasable sector). Content starts erased (0xFF). */
int flash_model_new(FlashModel **ret, uint32_t base, uint32_t size, bool nor, const FlashSector *sectors,
                    size_t n_sectors);
FlashModel *flash_model_free(FlashModel *f);

bool flash_model_contains(const FlashModel *f, uint32_t address, uint32_t len);
/* Index of the sector holding `address`, or -ENOENT. */
int flash_model_find_sector(const FlashModel *f, uint32_t address);

/* Erase the sector containing `address`. -ERANGE outside the flash,
 * -ENOENT when no sector covers it. Returns the sector size. */
int flash_model_erase_sector(FlashModel *f, uint32_t address);
int flash_model_mass_erase(FlashModel *f);
/* -ERANGE outside, -EIO when a byte was not erased (and differs from what is
 * written); the AND of old and new is stored either way. */
int flash_model_program(FlashModel *f, uint32_t address, const uint8_t *data, size_t len);
int flash_model_read(const FlashModel *f, uint32_t address, uint8_t *buf, size_t len);
/* Raw preload, bypassing the NOR rules (initial content, --flash). */
int flash_model_load(FlashModel *f, uint32_t address, const uint8_t *data, size_t len);
