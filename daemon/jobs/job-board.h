/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Which board a job flashes: resolved from the inventory entry (identified,
 * named by the user among candidates, or candidates that share their flash
 * geometry) or from the names recorded at submission, and what the flow and
 * the checks take of it (JobFlowBoard, a copy that outlives the database
 * entry's reload). At the bottom of jobs/: it includes no other job module
 * but job.h.
 */

#include <stdbool.h>
#include <stdint.h>

#include "boards/board-db.h"
#include "inventory/inventory.h"
#include "jobs/job.h"

typedef struct JobFlowBoard {
        char *name, *variant, *mcu;
        uint32_t flash_base, flash_size, app_offset;
        uint32_t ram_start, ram_size;
        DfuseLayout *layout; /* the DB's fallback layout (a copy), or NULL */
        bool katapult;       /* the board usually has Katapult */
        bool manual_reboot;  /* the DB says software reboot does not work */
        bool uart_request;   /* reboot = uart-request: Klipper's serial request block, not 1200 baud */
        char *hint;          /* hints joined, for waiting-for-device */
        /* an AVR behind a USB-serial bridge (bootloader stk500v2/stk500v1) */
        bool avr;
        bool avr_stk500v1; /* optiboot; else the Mega's STK500v2 */
        uint8_t avr_signature[3];
        uint32_t avr_page_size, avr_boot_size, avr_baud;
} JobFlowBoard;

/* The board as the flow and the checks see it; cleared (freed) by
 * job_flow_board_clear(). */
int job_flow_board_fill(JobFlowBoard *fb, const Board *b, const BoardVariant *v);
void job_flow_board_clear(JobFlowBoard *b);

/* Board and variant of a job: from the inventory entry `e` (identified,
 * named by the user among candidates, or candidates sharing their
 * geometry), else from the names recorded at submission, looked up in
 * `boards`. Either may be NULL. */
void job_board_of(const BoardDb *boards, const Job *j, const InventoryEntry *e, const Board **ret_b,
                  const BoardVariant **ret_v);
