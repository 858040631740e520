/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What a flash session (DFU, Katapult) tells its caller while it runs, on
 * the session's (worker) thread. One shape for every session, so a job
 * hands the same callbacks to whichever protocol the board speaks.
 */

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum FlashPhase {
        FLASH_PHASE_READ_BACK, /* reading the touched sectors to skip unchanged ones */
        FLASH_PHASE_ERASE,
        FLASH_PHASE_WRITE,
        FLASH_PHASE_VERIFY,
        FLASH_PHASE_LEAVE,
        _FLASH_PHASE_MAX,
        _FLASH_PHASE_INVALID = -EINVAL,
} FlashPhase;

/* "read-back", "erase", "write", "verify", "leave" */
const char *flash_phase_to_string(FlashPhase p);

/* All members may be NULL. */
typedef struct FlashCallbacks {
        /* A new phase starts; progress restarts at 0 of that phase's total. */
        void (*phase)(void *userdata, FlashPhase phase);
        /* bytes done / total in the current phase */
        void (*progress)(void *userdata, uint64_t bytes_done, uint64_t bytes_total);
        /* Something worth telling that is not an error ("cleared dfuERROR at start"). */
        void (*note)(void *userdata, const char *text);
        /* Checked between blocks and while waiting; when set, the session stops with -ECANCELED. */
        const atomic_bool *cancel;
        void *userdata;
} FlashCallbacks;

/* The calls a session makes; each accepts cb == NULL and NULL members. */
void flash_callbacks_phase(const FlashCallbacks *cb, FlashPhase phase);
void flash_callbacks_progress(const FlashCallbacks *cb, uint64_t done, uint64_t total);
void flash_callbacks_note(const FlashCallbacks *cb, const char *text);
bool flash_callbacks_cancelled(const FlashCallbacks *cb);
