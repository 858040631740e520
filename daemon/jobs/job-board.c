/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "jobs/job-board.h"

void job_flow_board_clear(JobFlowBoard *b)
{
        free(b->name);
        free(b->variant);
        free(b->mcu);
        dfuse_layout_free(b->layout);
        free(b->hint);
        *b = (JobFlowBoard){};
}

static const BoardVariant *find_variant(const Board *b, const char *id)
{
        if (!b)
                return NULL;
        for (size_t i = 0; i < b->n_variants; i++)
                if (streq_ptr(b->variants[i].id, id))
                        return &b->variants[i];
        return b->n_variants == 1 ? &b->variants[0] : NULL;
}

/* The hints a person needs while the job waits for the bootloader: those
 * about BOOT0/reset when the board has such, else all of them. */
static char *waiting_hint(char **hints)
{
        bool boot0 = false;
        size_t len = 1;
        char *s;

        for (char **h = hints; h && *h; h++) {
                boot0 = boot0 || strstr(*h, "BOOT0");
                len += strlen(*h) + 2;
        }
        if (len == 1)
                return NULL;
        s = calloc(1, len);
        if (!s)
                return NULL;
        for (char **h = hints; *h; h++) {
                if (boot0 && !strstr(*h, "BOOT0"))
                        continue;
                if (s[0])
                        strcat(s, "; ");
                strcat(s, *h);
        }
        return s;
}

int job_flow_board_fill(JobFlowBoard *fb, const Board *b, const BoardVariant *v)
{
        fb->name = strdup(b->name);
        fb->variant = v && v->id ? strdup(v->id) : NULL;
        fb->mcu = v && v->mcu ? strdup(v->mcu) : NULL;
        fb->katapult = b->bootloader == BOARD_BOOTLOADER_KATAPULT;
        if (v) {
                fb->flash_base = v->flash_base;
                fb->flash_size = v->flash_size;
                fb->app_offset = v->app_offset;
                fb->ram_start = v->ram_start;
                fb->ram_size = v->ram_size;
                if (v->flash_layout && dfuse_layout_copy(v->flash_layout, &fb->layout) < 0)
                        return -ENOMEM;
                fb->manual_reboot = v->reboot == BOARD_REBOOT_MANUAL;
                fb->uart_request = v->reboot == BOARD_REBOOT_UART_REQUEST;
                fb->hint = waiting_hint(v->hints);
                if (v->avr.present) {
                        fb->avr = true;
                        fb->avr_stk500v1 = b->bootloader == BOARD_BOOTLOADER_STK500V1;
                        memcpy(fb->avr_signature, v->avr.signature, 3);
                        fb->avr_page_size = v->avr.page_size;
                        fb->avr_boot_size = v->avr.boot_size;
                        fb->avr_baud = v->avr.baud;
                }
        }
        return fb->name ? 0 : -ENOMEM;
}

void job_board_of(const BoardDb *boards, const Job *j, const InventoryEntry *e, const Board **ret_b,
                  const BoardVariant **ret_v)
{
        const Board *b = e && e->board ? e->board : NULL;
        const BoardVariant *v = e && e->variant ? e->variant : NULL;

        /* Several boards share an MCU (and USB ids): the one the user named
         * (or that was recorded at submission) picks among the candidates. */
        if (!b && e)
                for (size_t i = 0; i < e->n_candidates; i++) {
                        const InventoryCandidate *c = &e->candidates[i];
                        if (!c->board ||
                            !(streq_ptr(c->board->name, j->board) || streq_ptr(c->board->name, j->target)))
                                continue;
                        if (b == c->board) {
                                v = NULL; /* two variants of the named board: not unique */
                                continue;
                        }
                        b = c->board;
                        v = c->variant;
                }
        /* Boards that the inventory cannot tell apart (an Octopus and an
         * Octopus Pro with the same MCU and USB ids) but that share the flash
         * geometry: any of them gives the right application offset. */
        if (!b && e && e->n_candidates > 0 && e->candidates[0].variant) {
                const BoardVariant *first = e->candidates[0].variant;
                bool same = true;
                for (size_t i = 1; i < e->n_candidates; i++) {
                        const BoardVariant *o = e->candidates[i].variant;
                        if (!o || o->flash_base != first->flash_base || o->flash_size != first->flash_size ||
                            o->app_offset != first->app_offset || o->ram_start != first->ram_start ||
                            !streq_ptr(o->mcu, first->mcu))
                                same = false;
                }
                if (same) {
                        b = e->candidates[0].board;
                        v = first;
                }
        }
        if (!b && j->board && boards)
                b = board_db_find(boards, j->board);
        if (b && !v)
                v = find_variant(b, j->variant);
        *ret_b = b;
        *ret_v = v;
}
