/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A DFU session: sequential protocol code over a UsbTransport, run by a
 * job on a worker thread. It does not log and touches no main-loop state:
 * it returns >= 0 or a negative errno plus a sentence for a person, reports
 * progress through FlashCallbacks and checks the cancel flag between blocks.
 *
 * DfuSe (bcdDFUVersion 0x011a, ST UM0424 / AN3156) devices are flashed
 * sector by sector by address; plain DFU 1.1 devices get one sequential
 * download (DFU 1.1 section 6.1).
 */

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec/dfuse-layout.h"
#include "codec/flash-image.h"
#include "usb/dfu-proto.h"
#include "usb/flash-plan.h"
#include "usb/usb-transport.h"
#include "util/flash-callbacks.h"
#include "util/flash-result.h"
#include "util/macros.h"

typedef struct DfuSession DfuSession;

typedef struct DfuFlashRequest {
        const FlashImage *image; /* borrowed */
        /* The memory layout to trust (cross-checked by the caller against the
         * board database); NULL: read it from the selected alt setting. */
        const DfuseLayout *layout;
        bool verify;         /* read back and compare what was written; default on */
        bool mass_erase;     /* erase the whole memory first instead of sectors */
        bool skip_unchanged; /* read first, leave sectors that already hold the image; default on */
        bool leave;          /* leave DFU mode and start the application afterwards */
        uint32_t leave_address;
} DfuFlashRequest;

#define DFU_FLASH_REQUEST_DEFAULTS .verify = true, .skip_unchanged = true

typedef struct DfuFlashStats {
        size_t sectors_touched;   /* sectors the image covers */
        size_t sectors_unchanged; /* skipped: already held the image */
        size_t sectors_blank;     /* written without erase: were all 0xFF */
        size_t sectors_erased;    /* erase commands sent (0 with mass erase) */
        bool mass_erased;
        uint64_t bytes_written;
        uint64_t bytes_read; /* read back before writing and for verify */
        uint64_t bytes_verified;
        unsigned set_address_requests;
        bool cleared_error_at_start;
        bool verify_mismatch;
        uint32_t mismatch_address;
} DfuFlashStats;

/*
 * Open the DFU-mode device at a port path ("1-1.3") or bus/device number,
 * find its DFU interface and select alt setting 0 (internal flash on STM32).
 * Errors: -ENODEV (not attached), -ENXIO (no DFU interface), -EMEDIUMTYPE
 * (only a run-time DFU interface: not in DFU mode), libusb errors as errno.
 * *ret_message (optional) gets a sentence on failure.
 */
int dfu_session_open_port_path(DfuSession **ret, const char *port_path, char **ret_message);
int dfu_session_open_bus_dev(DfuSession **ret, uint8_t bus, uint8_t dev, char **ret_message);
/* The same over a transport already open (any UsbTransportOps); takes
 * ownership of `t`, also on failure. `where` names the device in messages. */
int dfu_session_new(DfuSession **ret, UsbTransport *t, const char *where, char **ret_message);
DfuSession *dfu_session_free(DfuSession *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(DfuSession *, dfu_session_free);

bool dfu_session_is_dfuse(const DfuSession *s);
uint16_t dfu_session_get_transfer_size(const DfuSession *s);
const DfuFunctionalDescriptor *dfu_session_get_functional(const DfuSession *s);
const UsbDfuInfo *dfu_session_get_info(const DfuSession *s);
UsbTransport *dfu_session_get_transport(DfuSession *s);
const DfuFlashStats *dfu_session_get_stats(const DfuSession *s);
/* Notes collected so far, NULL-terminated (never NULL). */
char *const *dfu_session_get_notes(const DfuSession *s);
/* The sentence describing the last failure, or NULL. */
const char *dfu_session_get_error(const DfuSession *s);

/* Select (and claim) an alt setting; -ENOENT when the device has none such. */
int dfu_session_select_alt(DfuSession *s, uint8_t alt);
/* The alt setting whose name ("@Internal Flash  /0x08000000/...") starts
 * with `prefix` ("@Internal Flash"). */
int dfu_session_find_alt(DfuSession *s, const char *prefix, uint8_t *ret_alt);
/* Read and parse the DfuSe layout of the selected alt setting. */
int dfu_session_read_layout(DfuSession *s, DfuseLayout **ret);

/* Single requests (DFU 1.1 section 6). */
int dfu_session_get_status(DfuSession *s, DfuStatus *ret);
int dfu_session_clear_status(DfuSession *s);
int dfu_session_abort(DfuSession *s);
/*
 * GETSTATUS until the device leaves dfuDNBUSY / dfuDNLOAD-SYNC /
 * dfuMANIFEST-SYNC, sleeping exactly the bwPollTimeout the device asked
 * for between polls; fails with -ETIMEDOUT after `timeout_ms` overall.
 * A final dfuERROR is returned as -EIO with the status in *ret.
 */
int dfu_session_wait_while_busy(DfuSession *s, unsigned timeout_ms, DfuStatus *ret);
/*
 * Bring the device to dfuIDLE: a dfuERROR at the start (the STM32 ROM's
 * errFIRMWARE after power-up) is cleared with CLRSTATUS, leftovers of an
 * earlier session in dfuDNLOAD-IDLE / dfuUPLOAD-IDLE are ABORTed, and a
 * device still busy with an earlier session's block or erase
 * (dfuDNLOAD-SYNC, dfuDNBUSY: a killed flashd) is waited for at its
 * bwPollTimeout, up to a mass erase's time; all are recorded as notes, not
 * errors.
 */
int dfu_session_make_idle(DfuSession *s, const FlashCallbacks *cb);

/* DfuSe commands (UM0424 section 6), each waited for. */
int dfu_session_dfuse_set_address(DfuSession *s, uint32_t address);
int dfu_session_dfuse_erase_page(DfuSession *s, uint32_t address);
int dfu_session_dfuse_mass_erase(DfuSession *s);
/* One data block, wBlockNum >= 2, written to last SET_ADDRESS + (block-2) * wTransferSize. */
int dfu_session_dfuse_download_block(DfuSession *s, uint16_t block, const uint8_t *data, size_t len);
/* Read len bytes from address (SET_ADDRESS, ABORT, UPLOAD blocks 2..). */
int dfu_session_dfuse_upload(DfuSession *s, uint32_t address, uint8_t *buf, size_t len,
                             const FlashCallbacks *cb);

/*
 * Send DNLOAD blocks with wBlockNum addressing after one SET_ADDRESS per
 * contiguous run (true, default) or one SET_ADDRESS per block as dfu-util
 * does (false). Both are UM0424-conformant.
 */
void dfu_session_set_block_addressing(DfuSession *s, bool b);

/*
 * Flash the request (see DfuFlashRequest). Returns FLASH_RESULT_DONE (no
 * leave asked), FLASH_RESULT_LEFT or FLASH_RESULT_LEFT_DEVICE_GONE (the
 * device reset during leave, as STM32 ROMs do), or a negative errno:
 *   -ENODEV     the device vanished (the message names the address)
 *   -EIO        the device reported an error status (message: address + status)
 *   -EILSEQ     verify found a difference (message: first mismatching address)
 *   -ERANGE/-EACCES/-EINVAL  the image does not fit the layout (nothing erased)
 *   -ECANCELED  the cancel flag was set
 *   -ETIMEDOUT  the device stayed busy too long
 * *ret_message (optional, malloc'd) is set in every case: a summary on
 * success, what happened and what to do on failure.
 */
int dfu_session_flash(DfuSession *s, const DfuFlashRequest *req, const FlashCallbacks *cb,
                      char **ret_message);

/*
 * Read `len` bytes of memory from `address` (DfuSe) or from the start of
 * the firmware (plain DFU: `address` ignored) into buf, e.g. the whole
 * flash for tests and benchmarks. Returns the bytes read (a plain DFU
 * device may end early).
 */
int dfu_session_read(DfuSession *s, uint32_t address, uint8_t *buf, size_t len, const FlashCallbacks *cb,
                     char **ret_message);
