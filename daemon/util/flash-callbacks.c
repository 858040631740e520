/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "util/flash-callbacks.h"

static const char *const flash_phase_table[_FLASH_PHASE_MAX] = {
        [FLASH_PHASE_READ_BACK] = "read-back", [FLASH_PHASE_ERASE] = "erase", [FLASH_PHASE_WRITE] = "write",
        [FLASH_PHASE_VERIFY] = "verify",       [FLASH_PHASE_LEAVE] = "leave",
};

const char *flash_phase_to_string(FlashPhase p)
{
        return p >= 0 && p < _FLASH_PHASE_MAX ? flash_phase_table[p] : NULL;
}

void flash_callbacks_phase(const FlashCallbacks *cb, FlashPhase phase)
{
        if (cb && cb->phase)
                cb->phase(cb->userdata, phase);
}

void flash_callbacks_progress(const FlashCallbacks *cb, uint64_t done, uint64_t total)
{
        if (cb && cb->progress)
                cb->progress(cb->userdata, done, total);
}

void flash_callbacks_note(const FlashCallbacks *cb, const char *text)
{
        if (cb && cb->note && text)
                cb->note(cb->userdata, text);
}

bool flash_callbacks_cancelled(const FlashCallbacks *cb)
{
        return cb && cb->cancel && atomic_load(cb->cancel);
}
