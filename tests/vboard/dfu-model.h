/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The STM32 ROM bootloader's DFU interface: the DFU 1.1 state machine
 * (usb.org DFU 1.1, Appendix A state diagram and table) with ST's DfuSe
 * extensions (UM0424, AN3156). Pure: no I/O; the time is passed in with
 * every request (injectable clock), the memories are FlashModels owned by
 * the caller, one per alt setting.
 *
 * dfu_model_set_plain() turns it into a plain DFU 1.1 bootloader instead
 * (bcdDFU 0x0110, no DfuSe commands, one alt setting): DNLOAD blocks
 * (wBlockNum 0, 1, 2, ...) are written one after the other from the start
 * of the firmware region, erasing each sector when the download first
 * reaches it; a zero-length DNLOAD starts manifestation, which ends per
 * bmAttributes (DFU 1.1 4.1.3, A.2.6-A.2.8): manifestation tolerant back in
 * dfuIDLE after dfuMANIFEST, otherwise straight in dfuMANIFEST-WAIT-RESET
 * (as Smoothieware's bootloader answers), leaving on its own (bitWillDetach)
 * or at the host's USB reset. UPLOAD reads the firmware
 * region from its start; a short frame ends it (DFU 1.1 6.2).
 *
 * Flash operations start at the GETSTATUS that follows their DNLOAD
 * (dfuDNLOAD-SYNC -> dfuDNBUSY, DFU 1.1 6.1.2) and last as long as
 * timing.c says; the GETSTATUS answer carries that as bwPollTimeout, and a
 * GETSTATUS asked again before it has elapsed answers dfuDNBUSY again.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flash-model.h"
#include "usb/dfu-proto.h" /* the spec's enums, shared with the daemon */
#include "timing.h"

/* What the device does on its own after a request (the glue acts on it). */
typedef enum DfuAction {
        DFU_ACTION_NONE,
        DFU_ACTION_LEAVE,  /* manifestation done: reset and run the application */
        DFU_ACTION_RESET,  /* READ_UNPROTECT done: reset, back into the ROM */
        DFU_ACTION_VANISH, /* reset-on-leave: gone before answering */
        _DFU_ACTION_MAX,
} DfuAction;

/* UM0424 / AN3156 DfuSe command bytes (DNLOAD with wValue 0) */
enum {
        DFUSE_CMD_GET_COMMANDS = 0x00,
        DFUSE_CMD_SET_ADDRESS = 0x21,
        DFUSE_CMD_ERASE = 0x41,
        DFUSE_CMD_READ_UNPROTECT = 0x92,
};

#define DFU_MODEL_MAX_ALTS 4

typedef void (*DfuModelEventFn)(void *userdata, const char *event, uint32_t address, uint32_t length);

typedef struct DfuModel {
        const Timing *timing;
        FlashModel *alts[DFU_MODEL_MAX_ALTS]; /* not owned */
        size_t n_alts;
        unsigned alt;
        uint16_t transfer_size;
        bool reset_on_leave;

        /* plain DFU 1.1 (dfu_model_set_plain) */
        bool plain;
        uint8_t attributes;     /* functional descriptor bmAttributes (DFU_ATTR_*) */
        uint32_t plain_start;   /* the firmware region starts here, in alt 0 */
        uint32_t plain_offset;  /* next byte of the download */
        uint32_t plain_erased;  /* the download erased every sector below this */
        uint16_t plain_block;   /* the wBlockNum expected next */
        uint32_t upload_offset; /* next byte of the upload */
        bool manifested;        /* tolerant: manifestation done, dfuIDLE next */
        /* not tolerant: goes through dfuMANIFEST and answers no GETSTATUS
         * from then on (DFU 1.1 A.2.7 allows it) until reset */
        bool manifest_silent;

        DfuState state;
        DfuStatusCode status;
        uint32_t address; /* DfuSe address pointer */

        /* the DNLOAD waiting for its GETSTATUS */
        uint8_t *block;
        uint16_t block_len;
        uint16_t block_num;
        /* the operation in progress (dfuDNBUSY / dfuMANIFEST) */
        uint64_t busy_until;
        DfuState busy_next;
        DfuStatusCode busy_status;

        DfuAction action;
        uint64_t action_at;

        /* counters */
        uint64_t dnloads; /* data blocks */
        uint64_t uploads; /* data blocks */
        uint64_t bytes_uploaded;
        uint64_t stalls;

        DfuModelEventFn on_event;
        void *userdata;
} DfuModel;

const char *dfu_action_to_string(DfuAction a);

int dfu_model_new(DfuModel **ret, const Timing *timing, uint16_t transfer_size);
DfuModel *dfu_model_free(DfuModel *m);
int dfu_model_add_alt(DfuModel *m, FlashModel *memory);

/* Power-up / USB reset of the ROM: dfuIDLE, or dfuERROR/errFIRMWARE when
 * the board shows the error-at-start defect. */
void dfu_model_power_up(DfuModel *m, bool error_at_start);
/* USB bus reset (usbfs RESET): finishes a pending leave. */
void dfu_model_bus_reset(DfuModel *m, uint64_t now_us);
int dfu_model_set_alt(DfuModel *m, unsigned alt);
/* A plain DFU 1.1 device whose firmware starts at `start` in alt 0, with
 * these bmAttributes (DFU_ATTR_MANIFESTATION_TOLERANT, DFU_ATTR_WILL_DETACH
 * change how manifestation ends). */
int dfu_model_set_plain(DfuModel *m, uint32_t start, uint8_t attributes);

/*
 * One class request to the DFU interface. `data` holds wLength bytes: the
 * host's data for OUT requests, the buffer to fill for IN requests.
 * Returns the number of bytes of the data stage (IN) or 0 (OUT), -EPIPE
 * for a protocol stall (the state machine has moved to dfuERROR /
 * errSTALLEDPKT as DFU 1.1 Appendix A says), -ENODEV when the device is
 * gone before answering (reset-on-leave).
 */
int dfu_model_request(DfuModel *m, uint64_t now_us, uint8_t bm_request_type, uint8_t b_request,
                      uint16_t w_value, uint16_t w_length, uint8_t *data);

/* The device's own next step, if any, and when (DFU_ACTION_NONE if none). */
DfuAction dfu_model_pending_action(const DfuModel *m, uint64_t *ret_at_us);
void dfu_model_clear_action(DfuModel *m);
