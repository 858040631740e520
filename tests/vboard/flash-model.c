/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "flash-model.h"
#include "util/macros.h"

int flash_model_new(FlashModel **ret, uint32_t base, uint32_t size, bool nor, const FlashSector *sectors,
                    size_t n_sectors)
{
        FlashModel *f;

        if (size == 0 || (uint64_t)base + size > UINT64_C(0x100000000))
                return -EINVAL;
        for (size_t i = 0; i < n_sectors; i++) {
                if (sectors[i].size == 0 || sectors[i].address < base ||
                    (uint64_t)sectors[i].address + sectors[i].size > (uint64_t)base + size)
                        return -EINVAL;
                if (i > 0 && sectors[i].address < sectors[i - 1].address + sectors[i - 1].size)
                        return -EINVAL;
        }

        f = calloc(1, sizeof(*f));
        if (!f)
                return -ENOMEM;
        f->base = base;
        f->size = size;
        f->nor = nor;
        f->data = malloc(size);
        f->sectors = calloc(MAX(n_sectors, 1), sizeof(FlashSector));
        f->erases_per_sector = calloc(MAX(n_sectors, 1), sizeof(uint64_t));
        if (!f->data || !f->sectors || !f->erases_per_sector)
                return flash_model_free(f), -ENOMEM;
        memset(f->data, 0xFF, size);
        if (n_sectors)
                memcpy(f->sectors, sectors, n_sectors * sizeof(FlashSector));
        f->n_sectors = n_sectors;
        *ret = f;
        return 0;
}

FlashModel *flash_model_free(FlashModel *f)
{
        if (!f)
                return NULL;
        free(f->data);
        free(f->sectors);
        free(f->erases_per_sector);
        free(f);
        return NULL;
}

bool flash_model_contains(const FlashModel *f, uint32_t address, uint32_t len)
{
        return address >= f->base && (uint64_t)address + len <= (uint64_t)f->base + f->size;
}

int flash_model_find_sector(const FlashModel *f, uint32_t address)
{
        for (size_t i = 0; i < f->n_sectors; i++)
                if (address >= f->sectors[i].address &&
                    (uint64_t)address < (uint64_t)f->sectors[i].address + f->sectors[i].size)
                        return (int)i;
        return -ENOENT;
}

int flash_model_erase_sector(FlashModel *f, uint32_t address)
{
        int i;

        if (!flash_model_contains(f, address, 1))
                return -ERANGE;
        i = flash_model_find_sector(f, address);
        if (i < 0)
                return i;
        memset(f->data + (f->sectors[i].address - f->base), 0xFF, f->sectors[i].size);
        f->erases_per_sector[i]++;
        f->sector_erases++;
        return (int)f->sectors[i].size;
}

int flash_model_mass_erase(FlashModel *f)
{
        /* A mass erase clears every sector (RM0090 3.6.3 MER bit), nothing else. */
        for (size_t i = 0; i < f->n_sectors; i++) {
                memset(f->data + (f->sectors[i].address - f->base), 0xFF, f->sectors[i].size);
                f->erases_per_sector[i]++;
        }
        f->mass_erases++;
        return 0;
}

int flash_model_program(FlashModel *f, uint32_t address, const uint8_t *data, size_t len)
{
        uint8_t *p;
        bool bad = false;

        if (len > UINT32_MAX || !flash_model_contains(f, address, (uint32_t)len))
                return -ERANGE;
        p = f->data + (address - f->base);
        for (size_t i = 0; i < len; i++) {
                if (!f->nor) {
                        p[i] = data[i];
                        continue;
                }
                if (p[i] != 0xFF && p[i] != data[i])
                        bad = true;
                p[i] &= data[i];
        }
        f->bytes_written += len;
        if (bad) {
                f->program_errors++;
                return -EIO;
        }
        return 0;
}

int flash_model_read(const FlashModel *f, uint32_t address, uint8_t *buf, size_t len)
{
        if (len > UINT32_MAX || !flash_model_contains(f, address, (uint32_t)len))
                return -ERANGE;
        memcpy(buf, f->data + (address - f->base), len);
        return 0;
}

int flash_model_load(FlashModel *f, uint32_t address, const uint8_t *data, size_t len)
{
        if (len > UINT32_MAX || !flash_model_contains(f, address, (uint32_t)len))
                return -ERANGE;
        memcpy(f->data + (address - f->base), data, len);
        return 0;
}
