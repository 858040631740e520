/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Which sectors a DfuSe flash touches, and which of them can be left
 * alone. Pure: no I/O, no logging; the session reads the device and feeds
 * the current content in.
 *
 * A sector's target content is what it holds after erase + write: the
 * image bytes where the image has data and 0xFF everywhere else in that
 * sector (the erase sets every byte to 0xFF and nothing writes the gaps).
 * Uncovered bytes are therefore NOT don't-care: a sector whose gap holds
 * anything but 0xFF would change by flashing, so it is not skipped. This is
 * the only rule under which "skipped" and "flashed" leave identical flash.
 *
 *   current == target          -> UNCHANGED: neither erased nor written
 *   current is all 0xFF        -> BLANK: written without an erase (NOR
 *                                 programming only clears bits; every byte
 *                                 is programmed at most once)
 *   otherwise                  -> CHANGED: erased, then written
 *   not compared               -> CHANGED (skip_unchanged off)
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec/dfuse-layout.h"
#include "codec/flash-image.h"
#include "util/macros.h"

typedef enum FlashSectorAction {
        FLASH_SECTOR_CHANGED,
        FLASH_SECTOR_BLANK,
        FLASH_SECTOR_UNCHANGED,
        _FLASH_SECTOR_ACTION_MAX,
} FlashSectorAction;

const char *flash_sector_action_to_string(FlashSectorAction a);

typedef struct FlashPlanSector {
        uint32_t address;
        uint32_t size;
        uint32_t covered; /* bytes of this sector the image has data for */
        FlashSectorAction action;
} FlashPlanSector;

typedef struct FlashPlan {
        /* Sorted by address, each touched sector once. */
        FlashPlanSector *sectors;
        size_t n_sectors;
        /* The request's segments sorted by address (data still borrowed). */
        FlashSegment *segments;
        size_t n_segments;
        uint32_t max_sector_size;
} FlashPlan;

/*
 * The sectors the segments touch. Fails, with a sentence in *ret_message
 * (optional, malloc'd) when:
 *   -EINVAL  no data, overlapping segments, or a segment wrapping past 4 GiB
 *   -ERANGE  a byte lies outside every sector of the layout
 *   -EACCES  a touched sector is not both erasable and writeable
 */
int flash_plan_new(FlashPlan **ret, const DfuseLayout *layout, const FlashSegment *segments,
                   size_t n_segments, char **ret_message);
FlashPlan *flash_plan_free(FlashPlan *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(FlashPlan *, flash_plan_free);

/* Fill buf (sectors[i].size bytes) with sector i's target content. */
void flash_plan_sector_target(const FlashPlan *p, size_t i, uint8_t *buf);

/*
 * Compare a piece of current content against the target, narrowing the
 * running verdict. Start with *equal = *blank = true; once both are false
 * the rest of the sector need not be read.
 */
void flash_compare_update(const uint8_t *target, const uint8_t *current, size_t len, bool *equal,
                          bool *blank);
FlashSectorAction flash_sector_action_from(bool equal, bool blank);

/* Classify sector i from its full current content (sectors[i].size bytes). */
FlashSectorAction flash_plan_classify(FlashPlan *p, size_t i, const uint8_t *current);

/*
 * Keep the image's vector table out of the flash until everything else is
 * in. A bootloader (the STM32 ROM after a reset, Katapult, Klipper's own
 * checks) starts an application when the first words at the application
 * address look like a vector table (initial SP, reset vector). If sector 0
 * (the one holding the image's lowest address) kept its old, valid vector
 * table while later sectors are erased and rewritten, an interrupted flash
 * would leave a board that boots half an image. So whenever any sector is
 * going to be written, sector 0 is marked CHANGED even if its bytes are
 * unchanged: it is erased first (the board stays in its bootloader from
 * then on) and written last. A BLANK sector 0 holds no vector table and
 * stays BLANK. Returns true when sector 0 was re-marked.
 */
bool flash_plan_protect_vector_table(FlashPlan *p);

/* Bytes in sectors with the given action. */
uint64_t flash_plan_bytes(const FlashPlan *p, FlashSectorAction a);
size_t flash_plan_count(const FlashPlan *p, FlashSectorAction a);
