/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A PICOBOOT session: the RP2040 boot ROM in BOOTSEL mode (2e8a:0003),
 * flashed over its vendor interface (RP2040 datasheet 2.8.5) with a
 * UsbTransport's bulk transfers, each with a timeout. Sequential code for
 * a job's worker thread; it does not log: progress and notes go through
 * FlashCallbacks, failures come back as a negative errno plus a sentence.
 *
 * A stalled command is recovered as the datasheet describes (2.8.5.4):
 * GET_COMMAND_STATUS for the reason, the interface RESET request, clearing
 * the endpoint halts; then the command is tried again (twice at most).
 *
 * Order of the writes: when anything changes, the image's first sector
 * (at 0x10000000 the one with boot2 and the vector table) is erased first
 * and written last, so a flash interrupted anywhere leaves a board whose
 * ROM finds no valid boot2 and stays in BOOTSEL, rather than one that
 * boots half an image.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec/picoboot-proto.h"
#include "codec/flash-image.h"
#include "usb/usb-transport.h"
#include "util/flash-callbacks.h"
#include "util/flash-result.h"
#include "util/macros.h"

typedef struct PicobootSession PicobootSession;

typedef struct PicobootFlashRequest {
        const FlashImage *image; /* borrowed; inside the flash */
        uint32_t flash_size;     /* of the board's QSPI flash; 0: the 16 MiB XIP window */
        bool verify;             /* read back what was written */
        bool reboot;             /* reboot into the image afterwards */
} PicobootFlashRequest;

typedef struct PicobootFlashStats {
        size_t sectors_touched;
        size_t sectors_unchanged;
        size_t sectors_erased;
        uint64_t bytes_written;
        uint64_t bytes_read;
        uint64_t bytes_verified;
        unsigned stalls_recovered;
        uint32_t mismatch_address;
} PicobootFlashStats;

/*
 * Open the BOOTSEL device at a port path or bus/device number, find and
 * claim its PICOBOOT interface, and reset that interface (a halt left by
 * an earlier host is cleared). -ENODEV (not attached), -EMEDIUMTYPE (an
 * RP2350, or no RP2040 boot ROM), -ENXIO (no PICOBOOT interface).
 */
int picoboot_session_open_port_path(PicobootSession **ret, const char *port_path, char **ret_message);
int picoboot_session_open_bus_dev(PicobootSession **ret, uint8_t bus, uint8_t dev, char **ret_message);
/* The same over a transport already open (any UsbTransportOps with bulk
 * endpoints); takes ownership of `t`, also on failure. */
int picoboot_session_new(PicobootSession **ret, UsbTransport *t, char **ret_message);
PicobootSession *picoboot_session_free(PicobootSession *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(PicobootSession *, picoboot_session_free);

const PicobootFlashStats *picoboot_session_get_stats(const PicobootSession *s);
/* The status of the last failed command (valid after -EPIPE / -EIO). */
const PicobootCmdStatus *picoboot_session_get_last_status(const PicobootSession *s);

/* The boot ROM's version byte (1 = B0, 2 = B1, 3 = B2) and its name. */
int picoboot_session_rom_version(PicobootSession *s, uint8_t *ret);
const char *rp2040_rom_version_to_string(uint8_t v);

/* Single commands, each with its acknowledgement and stall recovery. */
int picoboot_session_exclusive(PicobootSession *s, uint8_t mode);
int picoboot_session_exit_xip(PicobootSession *s);
int picoboot_session_erase(PicobootSession *s, uint32_t address, uint32_t size);
int picoboot_session_write(PicobootSession *s, uint32_t address, const uint8_t *data, uint32_t size);
int picoboot_session_read(PicobootSession *s, uint32_t address, uint8_t *buf, uint32_t size);
/* Boot normally (from flash) after delay_ms. */
int picoboot_session_reboot(PicobootSession *s, uint32_t delay_ms);

/*
 * Flash the request: read every touched 4 KiB sector, leave the ones that
 * already hold the image (bytes of a sector outside the image keep their
 * content), erase and write the others in the safe order above, verify,
 * reboot. Returns PICOBOOT_FLASH_* or a negative errno:
 *   -ERANGE     the image does not fit the flash (nothing erased)
 *   -ENODEV     the board vanished (the message names the address)
 *   -EPIPE/-EIO the ROM kept refusing a command (message: its status)
 *   -EILSEQ     verify found a difference
 *   -ETIMEDOUT  a transfer timed out
 *   -ECANCELED  the cancel flag was set
 * *ret_message (optional, malloc'd) says what happened in every case.
 */
int picoboot_session_flash(PicobootSession *s, const PicobootFlashRequest *req, const FlashCallbacks *cb,
                           char **ret_message);
