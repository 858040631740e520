/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Shared between dfu-session.c (requests, commands) and dfu-flash.c (the
 * flash procedures). Not for other modules. */

#include "usb/dfu-session.h"
#include "util/macros.h"

struct DfuSession {
        UsbTransport *transport;
        UsbDfuInfo info;
        DfuFunctionalDescriptor functional;
        uint8_t interface;
        uint8_t alt;
        uint8_t alt_string_index;
        uint16_t transfer_size;
        bool dfuse;
        bool block_addressing;

        /* UM0424 block addressing: after SET_ADDRESS(run_address), block N
         * lands at run_address + (N - 2) * wTransferSize. Valid until any
         * other request moves the device's address pointer or state. */
        bool run_valid;
        uint32_t run_address;
        uint32_t run_block;
        /* The same addressing for UPLOAD (UM0424): after SET_ADDRESS(A) and
         * ABORT, any block N reads A + (N - 2) * wTransferSize, so reads of
         * later sectors jump ahead instead of setting the address again.
         * in_upload: the device is in dfuUPLOAD-IDLE and must be ABORTed
         * before any DNLOAD (DFU 1.1 A.2.10). */
        bool upload_run_valid;
        uint32_t upload_run_address;
        bool in_upload;

        char **notes;
        size_t n_notes;
        char *error;
        DfuFlashStats stats;
};

typedef int (*DfuChunkFn)(void *userdata, uint32_t offset, const uint8_t *data, size_t len);

/* The transport's clock: bwPollTimeout waits and deadlines. */
uint64_t dfu_session_now_ms(DfuSession *s);
void dfu_session_sleep_ms(DfuSession *s, uint32_t ms);
_printf_(3, 4) int dfu_session_fail(DfuSession *s, int error, const char *fmt, ...);
_printf_(3, 4) void dfu_session_note(DfuSession *s, const FlashCallbacks *cb, const char *fmt, ...);
int dfu_session_check_cancel(DfuSession *s, const FlashCallbacks *cb, const char *what, uint32_t address);
/* Turn a failed request into a message (asking the device for its status
 * after a stall) and return the error. */
int dfu_session_device_error(DfuSession *s, int r, const char *what);
int dfu_session_request_out(DfuSession *s, DfuRequest req, uint16_t value, const uint8_t *data, size_t len);
int dfu_session_request_in(DfuSession *s, DfuRequest req, uint16_t value, uint8_t *data, size_t len);
/* DNLOAD one block and wait for dfuDNLOAD-IDLE; `what` names it in errors. */
int dfu_session_download_block(DfuSession *s, uint16_t block, const uint8_t *data, size_t len,
                               const char *what);
/* UPLOAD len bytes from address in wTransferSize chunks, handing each to fn;
 * fn returning non-zero stops the upload and is returned. */
int dfu_session_dfuse_upload_each(DfuSession *s, uint32_t address, size_t len, const FlashCallbacks *cb,
                                  DfuChunkFn fn, void *userdata);
/* ABORT an upload left open for reuse (no-op when none is). */
int dfu_session_end_upload(DfuSession *s);
/* Plain DFU 1.1 upload from the start of the firmware; returns bytes read. */
int dfu_session_plain_upload(DfuSession *s, uint8_t *buf, size_t len, const FlashCallbacks *cb);
