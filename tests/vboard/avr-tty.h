/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * AVR boards (database bootloader stk500v2 / stk500v1): the MCU is simavr
 * running the real Arduino bootloader (avr-sim.c) behind the board's
 * USB-serial tty. See avr-tty.c.
 */

#include "vboard.h"

/* An AVR board? (b->db_board's bootloader) */
bool avr_board_wanted(const Board *bd);
/* Create the simulated MCU (vboard_new, lock not held); sets b->avr. */
int avr_board_new(VBoard *b);
/* vboard_free, lock not held. */
void avr_board_free(VBoard *b);
/* avr_resets, avr_app_starts, avr_program_commands (STK500v2),
 * avr_bytes_in/out into a stats counters object; nothing for other boards. */
void avr_board_add_stats(VBoard *b, json_t *counters);
/* Copy the simulated flash into b->flash (lock held). */
void avr_board_sync_flash(VBoard *b);

extern const struct TtyModel avr_tty_model;
