/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Flashing an AVR through its serial bootloader: the Arduino Mega's
 * STK500v2 bootloader (stk500v2-session.c) or optiboot's STK500v1
 * (stk500v1-session.c), over a SerialTransport. Runs on a job's worker
 * thread; blocks with bounded timeouts; never logs; every failure returns
 * a negative errno with a sentence in *ret_message.
 *
 * Flow (avr-session.c):
 *   check the image (not empty, below the boot section) -> reset pulse
 *   (the caller's DTR/RTS toggle, the Arduino auto-reset) -> sync within
 *   the bootloader's window (retried; the pulse repeated when the window
 *   was missed) -> the 3 signature bytes (another chip is refused before
 *   anything is written) -> read the image's pages back -> nothing
 *   changed: no page is written -> else write -> read back and compare
 *   -> leave (the bootloader starts the application).
 *
 * Which pages are written depends on the bootloader's erase behaviour:
 *   AVR_ERASE_SEQUENTIAL: the Mega's stk500boot erases, per program
 *     command, the page at an erase pointer that starts at 0 with the
 *     session and advances one page per command, whatever page is being
 *     written. Writing only the changed pages would erase others, so any
 *     change programs every page from 0 to the image's end, in order.
 *   AVR_ERASE_PAGE: optiboot erases the page it writes: unchanged pages
 *     are skipped.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec/flash-image.h"
#include "util/macros.h"
#include "serial/serial-transport.h"
#include "util/flash-callbacks.h"
#include "util/flash-result.h"

typedef enum AvrProtocol {
        AVR_PROTOCOL_STK500V2, /* Arduino Mega stk500boot, `avrdude -c wiring` */
        AVR_PROTOCOL_STK500V1, /* optiboot, `avrdude -c arduino` */
        _AVR_PROTOCOL_MAX,
        _AVR_PROTOCOL_INVALID = -EINVAL,
} AvrProtocol;

const char *avr_protocol_to_string(AvrProtocol p);
AvrProtocol avr_protocol_from_string(const char *s);

typedef enum AvrErase {
        AVR_ERASE_SEQUENTIAL,
        AVR_ERASE_PAGE,
        _AVR_ERASE_MAX,
} AvrErase;

typedef struct AvrTimeouts {
        uint64_t reply_usec;  /* an answer to a page command */
        uint64_t sync_usec;   /* an answer to one sync in the window */
        unsigned sync_tries;  /* syncs per reset pulse (the window is ~1 s) */
        unsigned resets;      /* reset pulses before giving up */
        uint64_t settle_usec; /* after a reset pulse, before the first sync */
} AvrTimeouts;

extern const AvrTimeouts avr_timeouts_default;

/* Pulse reset (DTR/RTS low, then high); 0 or a negative errno. */
typedef int (*AvrResetFn)(void *userdata);

typedef struct AvrChip {
        const char *mcu;      /* "atmega2560", for messages */
        uint8_t signature[3]; /* 1e 98 01 */
        uint32_t flash_size;
        uint32_t page_size;
        uint32_t boot_size; /* the boot section at the top of flash, never written */
} AvrChip;

typedef struct AvrFlashOptions {
        AvrChip chip;
        AvrResetFn reset; /* NULL: the bootloader is already listening */
        void *reset_userdata;
        bool no_verify;
        bool no_leave; /* stay in the bootloader (tests) */
} AvrFlashOptions;

typedef struct AvrFlashStats {
        unsigned resets, syncs;
        uint64_t pages_read, pages_written, pages_verified, pages_skipped;
        uint8_t signature[3];
        char programmer[32]; /* SIGN_ON's answer ("AVRISP_2"), STK500v2 only */
} AvrFlashStats;

typedef struct AvrSession AvrSession;

/* The transport stays owned by the caller and must outlive the session. */
int avr_session_new(AvrSession **ret, SerialTransport *t, AvrProtocol protocol);
AvrSession *avr_session_free(AvrSession *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(AvrSession *, avr_session_free);

void avr_session_set_timeouts(AvrSession *s, const AvrTimeouts *t);
AvrErase avr_session_erase_policy(const AvrSession *s);

/* Check only (no I/O): FLASH_ERR_BOOTLOADER_REGION, -EINVAL. */
int avr_image_check(size_t image_size, const AvrChip *chip, char **ret_message);

/*
 * `image` is flash content from address 0 (gaps are written as 0xFF). Returns FLASH_RESULT_LEFT
 * (FLASH_RESULT_DONE with no_leave), FLASH_RESULT_UNCHANGED or a negative
 * errno (FLASH_ERR_MCU: another chip answered, FLASH_ERR_BOOTLOADER_REGION:
 * the image reaches into the boot section, FLASH_ERR_VERIFY,
 * FLASH_ERR_NO_BOOTLOADER: none answered in its window or it stopped
 * answering, FLASH_ERR_REMOTE, -ENODEV when the
 * device went away, -ECANCELED, -EPROTO for malformed answers).
 * *ret_message (optional, malloc'd) is set in every case.
 */
int avr_session_flash(AvrSession *s, const FlashImage *image, const AvrFlashOptions *opts,
                      const FlashCallbacks *cb, char **ret_message);

const AvrFlashStats *avr_session_get_stats(const AvrSession *s);
