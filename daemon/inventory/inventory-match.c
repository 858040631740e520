/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Who is this board? Klipper names its MCU in the USB product string; a DFU
 * bootloader only shows its memory layout, which (with the flash size it
 * adds up to) narrows the board database down to a few variants. What was
 * seen on the same port in application mode narrows it further.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inventory/inventory-internal.h"
#include "util/macros.h"

#define MAX_CANDIDATES 64

void inventory_entry_clear_identity(InventoryEntry *e)
{
        free(e->mcu);
        e->mcu = NULL;
        free(e->candidates);
        e->candidates = NULL;
        e->n_candidates = 0;
        e->board = NULL;
        e->variant = NULL;
        for (size_t i = 0; i < e->n_diagnostics; i++)
                free(e->diagnostics[i]);
        free(e->diagnostics);
        e->diagnostics = NULL;
        e->n_diagnostics = 0;
}

static int entry_add_diagnostic(InventoryEntry *e, char *s)
{
        if (!s)
                return -ENOMEM;
        char **l = realloc(e->diagnostics, (e->n_diagnostics + 2) * sizeof(char *));
        if (!l) {
                free(s);
                return -ENOMEM;
        }
        e->diagnostics = l;
        l[e->n_diagnostics++] = s;
        l[e->n_diagnostics] = NULL;
        return 0;
}

_printf_(2, 3) static int entry_diagnostic(InventoryEntry *e, const char *format, ...)
{
        char *s = NULL;
        va_list ap;
        va_start(ap, format);
        if (vasprintf(&s, format, ap) < 0)
                s = NULL;
        va_end(ap);
        return entry_add_diagnostic(e, s);
}

static int entry_add_candidate(InventoryEntry *e, const Board *b, const BoardVariant *v)
{
        InventoryCandidate *l = realloc(e->candidates, (e->n_candidates + 1) * sizeof(*l));
        if (!l)
                return -ENOMEM;
        e->candidates = l;
        l[e->n_candidates++] = (InventoryCandidate){ b, v };
        return 0;
}

/* Klipper and Katapult put the MCU name in iProduct ("stm32f446xx"). */
static bool looks_like_mcu(const char *s)
{
        static const char *const prefixes[] = { "stm32",  "rp2040", "rp2350", "lpc",  "atsam",
                                                "atmega", "sam",    "gd32",   "hc32", "at32" };
        if (!s)
                return false;
        for (size_t i = 0; i < ELEMENTSOF(prefixes); i++)
                if (strncmp(s, prefixes[i], strlen(prefixes[i])) == 0)
                        return true;
        return false;
}

typedef enum LayoutRelation {
        LAYOUT_EQUAL,
        LAYOUT_PREFIX, /* device shows fewer sector groups, all matching */
        LAYOUT_DIFFERENT,
} LayoutRelation;

static size_t layout_n_segments(const DfuseLayout *l)
{
        size_t n = 0;
        for (size_t r = 0; r < l->n_regions; r++)
                n += l->regions[r].n_segments;
        return n;
}

static const DfuseSegment *layout_segment(const DfuseLayout *l, size_t idx)
{
        for (size_t r = 0; r < l->n_regions; r++) {
                if (idx < l->regions[r].n_segments)
                        return &l->regions[r].segments[idx];
                idx -= l->regions[r].n_segments;
        }
        return NULL;
}

static LayoutRelation layout_compare(const DfuseLayout *device, const DfuseLayout *db)
{
        size_t nd = layout_n_segments(device), nb = layout_n_segments(db);
        if (nd > nb)
                return LAYOUT_DIFFERENT;
        for (size_t i = 0; i < nd; i++) {
                const DfuseSegment *a = layout_segment(device, i), *b = layout_segment(db, i);
                if (a->address != b->address || a->count != b->count || a->size != b->size ||
                    a->flags != b->flags)
                        return LAYOUT_DIFFERENT;
        }
        return nd == nb ? LAYOUT_EQUAL : LAYOUT_PREFIX;
}

static const InventoryAlt *entry_flash_alt(const InventoryEntry *e)
{
        /* Alt 0 is the internal flash on every STM32 ROM (UM0424 / AN3156). */
        for (size_t i = 0; i < e->n_alts; i++)
                if (e->alts[i].layout)
                        return &e->alts[i];
        return NULL;
}

static void identify_dfu(InventoryEntry *e, const BoardDb *db)
{
        const BoardVariant *variants[MAX_CANDIDATES];
        const Board *boards[MAX_CANDIDATES];
        const InventoryAlt *alt = entry_flash_alt(e);
        size_t n = db ? board_db_match_usb(db, e->vid, e->pid, variants, boards, MAX_CANDIDATES) : 0;
        size_t n_prefix = 0;
        const BoardVariant *prefix_variant = NULL;

        if (!alt) {
                /* A plain DFU 1.1 bootloader shows no layout, but its own USB
                 * id (Smoothieware's 1d50:6015), which no STM32 ROM shares,
                 * names the boards that have it. */
                for (size_t i = 0; i < n; i++)
                        if (boards[i]->bootloader == BOARD_BOOTLOADER_DFU &&
                            variants[i]->usb_dfu.vid == e->vid && variants[i]->usb_dfu.pid == e->pid)
                                entry_add_candidate(e, boards[i], variants[i]);
                return;
        }
        uint64_t total = dfuse_layout_total_size(alt->layout);

        for (size_t i = 0; i < n; i++) {
                const BoardVariant *v = variants[i];
                if (v->usb_dfu.vid != e->vid || v->usb_dfu.pid != e->pid || !v->layout)
                        continue;
                DfuseLayout *dbl = NULL;
                if (dfuse_layout_parse(v->layout, strlen(v->layout), &dbl) < 0)
                        continue;
                LayoutRelation rel = layout_compare(alt->layout, dbl);
                dfuse_layout_free(dbl);
                if (rel == LAYOUT_EQUAL)
                        entry_add_candidate(e, boards[i], v);
                else if (rel == LAYOUT_PREFIX) {
                        n_prefix++;
                        prefix_variant = v;
                }
        }

        if (e->n_candidates == 0 && n_prefix > 0)
                entry_diagnostic(
                        e,
                        "alt %u: the layout shows %zu sector groups (%llu KiB), fewer than the board "
                        "database lists for %s (%u KiB): the string is incomplete; a flash must not "
                        "rely on it",
                        alt->alt, layout_n_segments(alt->layout), (unsigned long long)(total / 1024),
                        prefix_variant->mcu, prefix_variant->flash_size / 1024);
        else if (e->n_candidates == 0 && n > 0)
                entry_diagnostic(e,
                                 "alt %u: the layout (%llu KiB of flash) matches no board in the database",
                                 alt->alt, (unsigned long long)(total / 1024));
        else if (e->n_candidates > 0 && alt->layout->truncated)
                entry_diagnostic(e,
                                 "alt %u: the %zu sector groups kept match the board database layout of %s",
                                 alt->alt, layout_n_segments(alt->layout), e->candidates[0].variant->mcu);
}

/* The RP2040 boot ROM looks the same on every board: the boards whose
 * database entry names its id. */
static void identify_bootsel(InventoryEntry *e, const BoardDb *db)
{
        const BoardVariant *variants[MAX_CANDIDATES];
        const Board *boards[MAX_CANDIDATES];
        size_t n = db ? board_db_match_usb(db, e->vid, e->pid, variants, boards, MAX_CANDIDATES) : 0;

        if (e->vid == 0x2e8a && e->pid == 0x000f) {
                entry_diagnostic(e, "an RP2350 boot ROM (2e8a:000f): flashd supports the RP2040 only");
                return;
        }
        for (size_t i = 0; i < n; i++)
                if (variants[i]->usb_bootsel.vid == e->vid && variants[i]->usb_bootsel.pid == e->pid)
                        entry_add_candidate(e, boards[i], variants[i]);
}

/* A USB-serial bridge has no MCU identity of its own; an id that only
 * one kind of board carries (an Arduino Mega's 16U2, 2341:0042) names the
 * AVR boards whose database entry lists it. Generic bridges (CH340, FTDI)
 * stay unidentified: the user names the board. */
static void identify_serial(InventoryEntry *e, const BoardDb *db)
{
        const BoardVariant *variants[MAX_CANDIDATES];
        const Board *boards[MAX_CANDIDATES];
        size_t n = db ? board_db_match_usb(db, e->vid, e->pid, variants, boards, MAX_CANDIDATES) : 0;

        for (size_t i = 0; i < n; i++)
                if (variants[i]->avr.present && variants[i]->usb_app.vid == e->vid &&
                    variants[i]->usb_app.pid == e->pid)
                        entry_add_candidate(e, boards[i], variants[i]);
}

static void identify_by_mcu(InventoryEntry *e, const BoardDb *db, const char *mcu)
{
        const BoardVariant *variants[MAX_CANDIDATES];
        const Board *boards[MAX_CANDIDATES];
        size_t n = db ? board_db_match_mcu(db, mcu, variants, boards, MAX_CANDIDATES) : 0;

        for (size_t i = 0; i < n; i++)
                entry_add_candidate(e, boards[i], variants[i]);
}

/* Keep only candidates with this MCU, unless that would leave none. */
static void filter_by_mcu(InventoryEntry *e, const char *mcu)
{
        size_t k = 0;
        for (size_t i = 0; i < e->n_candidates; i++)
                if (streq_ptr(e->candidates[i].variant->mcu, mcu))
                        k++;
        if (k == 0 || k == e->n_candidates)
                return;
        size_t j = 0;
        for (size_t i = 0; i < e->n_candidates; i++)
                if (streq_ptr(e->candidates[i].variant->mcu, mcu))
                        e->candidates[j++] = e->candidates[i];
        e->n_candidates = j;
}

int inventory_entry_identify(InventoryEntry *e, const BoardDb *db)
{
        inventory_entry_clear_identity(e);

        if (!e->present)
                return 0;

        for (size_t i = 0; i < e->n_alts; i++) {
                const InventoryAlt *a = &e->alts[i];
                if (a->diagnostic)
                        entry_diagnostic(e, "alt %u: %s", a->alt, a->diagnostic);
        }
        if (e->probe_diagnostic)
                entry_diagnostic(e, "%s", e->probe_diagnostic);

        switch (e->mode) {
        case DEVICE_MODE_APP:
        case DEVICE_MODE_KATAPULT:
                if (looks_like_mcu(e->product)) {
                        e->mcu = strdup(e->product);
                        if (!e->mcu)
                                return -ENOMEM;
                        identify_by_mcu(e, db, e->mcu);
                }
                break;
        case DEVICE_MODE_DFU:
                identify_dfu(e, db);
                if (e->last_mcu)
                        filter_by_mcu(e, e->last_mcu);
                break;
        case DEVICE_MODE_BOOTSEL:
                identify_bootsel(e, db);
                if (e->last_mcu)
                        filter_by_mcu(e, e->last_mcu);
                break;
        case DEVICE_MODE_SERIAL:
                identify_serial(e, db);
                break;
        case DEVICE_MODE_UNKNOWN:
                break;
        case _DEVICE_MODE_MAX:
        case _DEVICE_MODE_INVALID:
                return -EINVAL;
        }

        if (e->n_candidates == 0)
                return 0;

        /* MCU, board and variant only where every candidate agrees. */
        bool same_mcu = true, same_board = true;
        for (size_t i = 1; i < e->n_candidates; i++) {
                same_mcu =
                        same_mcu && streq_ptr(e->candidates[i].variant->mcu, e->candidates[0].variant->mcu);
                same_board = same_board && e->candidates[i].board == e->candidates[0].board;
        }
        if (!e->mcu && same_mcu && e->candidates[0].variant->mcu) {
                e->mcu = strdup(e->candidates[0].variant->mcu);
                if (!e->mcu)
                        return -ENOMEM;
        }
        if (same_board)
                e->board = e->candidates[0].board;
        if (e->n_candidates == 1)
                e->variant = e->candidates[0].variant;
        return 0;
}
