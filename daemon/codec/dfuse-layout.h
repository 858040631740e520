/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * DfuSe memory layout strings (UM0424 / dfu-util's "@name/0xADDR/N*SSSKt,...").
 * A pure codec: no I/O, no logging.
 *
 * Real ROMs deliver broken strings (truncated descriptors, UTF-16 garbage
 * after the last segment), so the parser follows the grammar and stops at
 * the first character that does not fit, keeping every complete segment
 * and saying what it dropped in `diagnostic`.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/macros.h"

/* Low three bits of the segment type letter (a..g). */
enum {
        DFUSE_SECTOR_READABLE = 1 << 0,
        DFUSE_SECTOR_ERASABLE = 1 << 1,
        DFUSE_SECTOR_WRITEABLE = 1 << 2,
};

typedef struct DfuseSegment {
        uint32_t address; /* start of the first sector of this group */
        uint32_t count;   /* number of sectors */
        uint32_t size;    /* bytes per sector */
        uint8_t flags;    /* DFUSE_SECTOR_* */
} DfuseSegment;

typedef struct DfuseRegion {
        uint32_t address;
        DfuseSegment *segments;
        size_t n_segments;
} DfuseRegion;

typedef struct DfuseLayout {
        char *name; /* "Internal Flash", trimmed */
        DfuseRegion *regions;
        size_t n_regions;
        /* true when input after the last complete segment was dropped */
        bool truncated;
        /* NULL, or a sentence for a person: what was dropped or repaired */
        char *diagnostic;
} DfuseLayout;

/*
 * Parse `len` bytes of UTF-8 (already decoded from the UTF-16 descriptor;
 * non-ASCII garbage is simply a character that does not fit). Returns 0 and
 * a layout with at least one complete segment, or -EBADMSG when not even
 * one segment could be read.
 */
int dfuse_layout_parse(const char *s, size_t len, DfuseLayout **ret);
DfuseLayout *dfuse_layout_free(DfuseLayout *l);
DEFINE_TRIVIAL_CLEANUP_FUNC(DfuseLayout *, dfuse_layout_free);
/* A deep copy, for a snapshot that outlives the original (a job's copy of
 * what the inventory parsed); -ENOMEM. */
int dfuse_layout_copy(const DfuseLayout *l, DfuseLayout **ret);

/* Sum of all sector sizes of all regions. */
uint64_t dfuse_layout_total_size(const DfuseLayout *l);

/* The sector containing `address`: returns true and fills segment/index. */
bool dfuse_layout_find_sector(const DfuseLayout *l, uint32_t address, const DfuseSegment **ret_segment,
                              uint32_t *ret_sector_start, uint32_t *ret_sector_size);

/* Canonical string form ("@Internal Flash  /0x08000000/04*016Kg,..."); malloc'd. */
char *dfuse_layout_to_string(const DfuseLayout *l);
