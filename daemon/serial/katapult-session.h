/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Flashing through the Katapult bootloader: sequential protocol code over a
 * SerialTransport (a tty today; CAN would be another transport). Runs on a
 * job's worker thread; blocks with bounded timeouts; never logs. Every
 * failure returns a negative errno and leaves a sentence for a person in
 * katapult_session_error().
 *
 * Flow (as Katapult's scripts/flashtool.py does it, with stricter checks):
 *   CONNECT (retried) -> check start address and MCU (refuse before any
 *   block is written unless forced) -> SEND_BLOCK x n (last one padded with
 *   0xFF; the page holding the vector table invalidated first and written
 *   last where the chip allows it, see katapult-session.c) -> EOF ->
 *   REQUEST_BLOCK x n and compare -> COMPLETE.
 * NACK and BUSY answers, lost or corrupted frames are retried a bounded
 * number of times; the device vanishing gives -ENODEV at once.
 */

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec/dfuse-layout.h"
#include "codec/flash-image.h"
#include "codec/katapult-proto.h"
#include "util/macros.h"
#include "serial/serial-transport.h"
#include "util/flash-callbacks.h"
#include "util/flash-result.h"

typedef struct KatapultTimeouts {
        uint64_t reply_usec;       /* wait for a reply (flashtool: 2 s) */
        uint64_t block_reply_usec; /* SEND_BLOCK may erase a 128 KiB sector (flashtool: 5 s) */
        uint64_t quiet_usec;       /* line quiet after garbage/partial frame -> resend at once */
        uint64_t retry_delay_usec; /* pause before resending after NACK/timeout (flashtool: 0.5 s) */
        uint64_t busy_delay_usec;  /* pause after BUSY (flashtool: 1.5 s) */
        unsigned tries;            /* sends per command (flashtool: 5) */
} KatapultTimeouts;

/* The defaults above; tests shrink them. */
extern const KatapultTimeouts katapult_timeouts_default;

/* Besides the shared results and errors (util/flash-result.h): -ETIMEDOUT
 * (no valid answer after all tries), -EPROTO (malformed answers), -ENOMEM. */

typedef struct KatapultFlashOptions {
        /* Where the image is built to run (its vector table / the job's
         * address); 0 = unknown, not checked. */
        uint32_t image_address;
        /* klipper.bin's config.MCU; NULL = unknown, not checked. */
        const char *image_mcu;
        bool force_address; /* --force address: write anyway */
        bool force_mcu;     /* --force mcu */
        bool no_verify;     /* skip the read back (COMPLETE right after EOF) */
        bool no_complete;   /* stay in Katapult after a good verify */
        /* The board's flash layout (erase units), to find the page that
         * holds the vector table; NULL: from the MCU Katapult reports. */
        const DfuseLayout *layout;
} KatapultFlashOptions;

typedef struct KatapultSession KatapultSession;

/* The transport stays owned by the caller and must outlive the session. */
int katapult_session_new(KatapultSession **ret, SerialTransport *t);
KatapultSession *katapult_session_free(KatapultSession *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(KatapultSession *, katapult_session_free);

/* Defaults: katapult_timeouts_default. */
void katapult_session_set_timeouts(KatapultSession *s, const KatapultTimeouts *t);
/*
 * Send one invalid command before CONNECT and ignore its answer, as
 * flashtool.py does for STM32 parts whose USB FS double buffering holds
 * back the first reply (not F2/F4/H7). See katapult_mcu_needs_prime().
 */
void katapult_session_set_prime(KatapultSession *s, bool prime);
/* `usb_product` is the Katapult tty's USB product string (the MCU). */
bool katapult_mcu_needs_prime(const char *usb_product);

/*
 * CONNECT (retried). Safe to call again; returns the cached info then.
 * cb may be NULL. *ret_message (optional, malloc'd) is set on failure.
 */
int katapult_session_connect(KatapultSession *s, const FlashCallbacks *cb, KatapultConnectInfo *ret_info,
                             char **ret_message);

/*
 * Check the image against the connected bootloader without writing:
 * FLASH_ERR_ADDRESS / FLASH_ERR_MCU unless forced,
 * FLASH_ERR_TOO_BIG, -EINVAL for an empty image. Connects if needed.
 */
int katapult_session_check(KatapultSession *s, size_t image_size, const KatapultFlashOptions *opts,
                           const FlashCallbacks *cb, char **ret_message);

/*
 * Connect, check, write, EOF, verify, COMPLETE; `image` is written at
 * Katapult's application start address, as one piece from
 * its lowest address (gaps 0xFF). Returns FLASH_RESULT_LEFT or
 * FLASH_RESULT_LEFT_DEVICE_GONE (or FLASH_RESULT_DONE with
 * no_complete), or a negative errno (see FLASH_ERR_*). Nothing is
 * written when a check fails. *ret_message (optional, malloc'd) is set in
 * every case: a summary on success, what happened and what to do on failure.
 */
int katapult_session_flash(KatapultSession *s, const FlashImage *image, const KatapultFlashOptions *opts,
                           const FlashCallbacks *cb, char **ret_message);

/*
 * GET_CANBUS_ID (Katapult built for CAN): the node's 6-byte UUID, to be
 * sure the node id talks to the node meant. Connects if needed.
 */
int katapult_session_get_canbus_id(KatapultSession *s, uint8_t ret_uuid[static 6], const FlashCallbacks *cb,
                                   char **ret_message);

/* Just COMPLETE: leave Katapult and start the application. Returns
 * FLASH_RESULT_LEFT or FLASH_RESULT_LEFT_DEVICE_GONE. */
int katapult_session_complete(KatapultSession *s, const FlashCallbacks *cb, char **ret_message);

typedef struct KatapultFlashStats {
        uint64_t blocks_written;
        uint64_t blocks_verified;
        uint32_t pages_written; /* as the bootloader reports at EOF */
        unsigned resends;       /* frames sent again (NACK, BUSY, timeouts, corruption) */
        unsigned nacks, busies, errors, timeouts;
} KatapultFlashStats;

const KatapultFlashStats *katapult_session_get_stats(const KatapultSession *s);
/* What CONNECT reported, or NULL before a successful connect. */
const KatapultConnectInfo *katapult_session_get_info(const KatapultSession *s);
/* The sentence describing the last failure, or NULL. */
const char *katapult_session_get_error(const KatapultSession *s);
