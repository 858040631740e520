/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Sector planning for DfuSe flashing (see flash-plan.h for the rule that
 * decides which sectors are skipped and why).
 */

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "usb/flash-plan.h"
#include "util/macros.h"

static const char *const flash_sector_action_table[_FLASH_SECTOR_ACTION_MAX] = {
        [FLASH_SECTOR_CHANGED] = "changed",
        [FLASH_SECTOR_BLANK] = "blank",
        [FLASH_SECTOR_UNCHANGED] = "unchanged",
};

const char *flash_sector_action_to_string(FlashSectorAction a)
{
        return (unsigned)a < _FLASH_SECTOR_ACTION_MAX ? flash_sector_action_table[a] : NULL;
}

FlashPlan *flash_plan_free(FlashPlan *p)
{
        if (!p)
                return NULL;
        free(p->sectors);
        free(p->segments);
        free(p);
        return NULL;
}

_printf_(3, 4) static int plan_fail(char **ret_message, int error, const char *fmt, ...)
{
        va_list ap;

        if (ret_message) {
                va_start(ap, fmt);
                if (vasprintf(ret_message, fmt, ap) < 0)
                        *ret_message = NULL;
                va_end(ap);
        }
        return error;
}

static int segment_cmp(const void *a, const void *b)
{
        const FlashSegment *x = a, *y = b;

        return x->address < y->address ? -1 : x->address > y->address;
}

static int plan_add_sector(FlashPlan *p, uint32_t address, uint32_t size, uint32_t covered)
{
        FlashPlanSector *s;

        /* Segments are sorted, so a sector shared by two segments is the last one added. */
        if (p->n_sectors > 0 && p->sectors[p->n_sectors - 1].address == address) {
                p->sectors[p->n_sectors - 1].covered += covered;
                return 0;
        }
        s = realloc(p->sectors, (p->n_sectors + 1) * sizeof(*s));
        if (!s)
                return -ENOMEM;
        p->sectors = s;
        p->sectors[p->n_sectors++] = (FlashPlanSector){
                .address = address,
                .size = size,
                .covered = covered,
                .action = FLASH_SECTOR_CHANGED,
        };
        p->max_sector_size = MAX(p->max_sector_size, size);
        return 0;
}

int flash_plan_new(FlashPlan **ret, const DfuseLayout *layout, const FlashSegment *segments,
                   size_t n_segments, char **ret_message)
{
        _cleanup_(flash_plan_freep) FlashPlan *p = NULL;
        int r;

        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;

        for (size_t i = 0; i < n_segments; i++) {
                if (segments[i].size == 0)
                        continue;
                if ((uint64_t)segments[i].address + segments[i].size > UINT64_C(1) << 32)
                        return plan_fail(ret_message, -EINVAL,
                                         "the image segment at 0x%08" PRIx32
                                         " (%zu bytes) runs past the end of the 32-bit address space",
                                         segments[i].address, segments[i].size);
                FlashSegment *s = realloc(p->segments, (p->n_segments + 1) * sizeof(*s));
                if (!s)
                        return -ENOMEM;
                p->segments = s;
                p->segments[p->n_segments++] = segments[i];
        }
        if (p->n_segments == 0)
                return plan_fail(ret_message, -EINVAL, "the image contains no data");

        qsort(p->segments, p->n_segments, sizeof(*p->segments), segment_cmp);

        for (size_t i = 0; i < p->n_segments; i++) {
                const FlashSegment *seg = &p->segments[i];
                uint64_t pos = seg->address, end = (uint64_t)seg->address + seg->size;

                if (i > 0 && (uint64_t)p->segments[i - 1].address + p->segments[i - 1].size > seg->address)
                        return plan_fail(ret_message, -EINVAL,
                                         "the image's segments overlap at 0x%08" PRIx32, seg->address);

                while (pos < end) {
                        const DfuseSegment *lseg;
                        uint32_t start, size;
                        uint64_t upto;

                        if (!dfuse_layout_find_sector(layout, (uint32_t)pos, &lseg, &start, &size) ||
                            size == 0)
                                return plan_fail(ret_message, -ERANGE,
                                                 "the image reaches 0x%08" PRIx32
                                                 ", which is outside the flash layout of the device; "
                                                 "the image does not fit at this address",
                                                 (uint32_t)pos);
                        if ((lseg->flags & (DFUSE_SECTOR_ERASABLE | DFUSE_SECTOR_WRITEABLE)) !=
                            (DFUSE_SECTOR_ERASABLE | DFUSE_SECTOR_WRITEABLE))
                                return plan_fail(ret_message, -EACCES,
                                                 "the image reaches 0x%08" PRIx32
                                                 ", in a sector the device marks as not %s",
                                                 (uint32_t)pos,
                                                 !(lseg->flags & DFUSE_SECTOR_WRITEABLE) ? "writeable"
                                                                                         : "erasable");

                        upto = MIN(end, (uint64_t)start + size);
                        r = plan_add_sector(p, start, size, (uint32_t)(upto - pos));
                        if (r < 0)
                                return r;
                        pos = upto;
                }
        }

        *ret = TAKE_PTR(p);
        return 0;
}

void flash_plan_sector_target(const FlashPlan *p, size_t i, uint8_t *buf)
{
        const FlashPlanSector *sec = &p->sectors[i];
        uint64_t sec_end = (uint64_t)sec->address + sec->size;

        memset(buf, 0xFF, sec->size);
        for (size_t k = 0; k < p->n_segments; k++) {
                const FlashSegment *seg = &p->segments[k];
                uint64_t a = MAX((uint64_t)seg->address, (uint64_t)sec->address);
                uint64_t b = MIN((uint64_t)seg->address + seg->size, sec_end);

                if (a >= b)
                        continue;
                memcpy(buf + (a - sec->address), seg->data + (a - seg->address), (size_t)(b - a));
        }
}

void flash_compare_update(const uint8_t *target, const uint8_t *current, size_t len, bool *equal,
                          bool *blank)
{
        if (*equal && memcmp(target, current, len) != 0)
                *equal = false;
        if (*blank)
                for (size_t i = 0; i < len; i++)
                        if (current[i] != 0xFF) {
                                *blank = false;
                                break;
                        }
}

FlashSectorAction flash_sector_action_from(bool equal, bool blank)
{
        /* An all-0xFF target on a blank sector is "unchanged": nothing to do. */
        if (equal)
                return FLASH_SECTOR_UNCHANGED;
        if (blank)
                return FLASH_SECTOR_BLANK;
        return FLASH_SECTOR_CHANGED;
}

FlashSectorAction flash_plan_classify(FlashPlan *p, size_t i, const uint8_t *current)
{
        _cleanup_free_ uint8_t *target = NULL;
        bool equal = true, blank = true;

        target = malloc(p->sectors[i].size);
        if (!target) /* Without memory we cannot prove anything: flash it. */
                return p->sectors[i].action = FLASH_SECTOR_CHANGED;

        flash_plan_sector_target(p, i, target);
        flash_compare_update(target, current, p->sectors[i].size, &equal, &blank);
        return p->sectors[i].action = flash_sector_action_from(equal, blank);
}

bool flash_plan_protect_vector_table(FlashPlan *p)
{
        bool other_written = false;

        if (p->n_sectors == 0 || p->sectors[0].action != FLASH_SECTOR_UNCHANGED)
                return false;
        for (size_t i = 1; i < p->n_sectors; i++)
                other_written = other_written || p->sectors[i].action != FLASH_SECTOR_UNCHANGED;
        if (!other_written)
                return false;
        p->sectors[0].action = FLASH_SECTOR_CHANGED;
        return true;
}

uint64_t flash_plan_bytes(const FlashPlan *p, FlashSectorAction a)
{
        uint64_t n = 0;

        for (size_t i = 0; i < p->n_sectors; i++)
                if (p->sectors[i].action == a)
                        n += p->sectors[i].size;
        return n;
}

size_t flash_plan_count(const FlashPlan *p, FlashSectorAction a)
{
        size_t n = 0;

        for (size_t i = 0; i < p->n_sectors; i++)
                if (p->sectors[i].action == a)
                        n++;
        return n;
}
