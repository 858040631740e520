/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * USB DFU 1.1 and ST DfuSe (UM0424 / AN3156) wire formats: request codes,
 * states, status codes, GETSTATUS decoding, the DFU functional descriptor
 * and DfuSe command encoding. A pure codec: no I/O, no logging.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* DFU 1.1 section 3: class-specific requests. */
typedef enum DfuRequest {
        DFU_REQUEST_DETACH = 0,
        DFU_REQUEST_DNLOAD = 1,
        DFU_REQUEST_UPLOAD = 2,
        DFU_REQUEST_GETSTATUS = 3,
        DFU_REQUEST_CLRSTATUS = 4,
        DFU_REQUEST_GETSTATE = 5,
        DFU_REQUEST_ABORT = 6,
        _DFU_REQUEST_MAX,
} DfuRequest;

/* bmRequestType of class requests to an interface (DFU 1.1 section 3). */
#define DFU_REQUEST_TYPE_OUT 0x21
#define DFU_REQUEST_TYPE_IN  0xA1

/* DFU 1.1 section 6.1.2: bState. */
typedef enum DfuState {
        DFU_STATE_APP_IDLE = 0,
        DFU_STATE_APP_DETACH = 1,
        DFU_STATE_DFU_IDLE = 2,
        DFU_STATE_DFU_DNLOAD_SYNC = 3,
        DFU_STATE_DFU_DNBUSY = 4,
        DFU_STATE_DFU_DNLOAD_IDLE = 5,
        DFU_STATE_DFU_MANIFEST_SYNC = 6,
        DFU_STATE_DFU_MANIFEST = 7,
        DFU_STATE_DFU_MANIFEST_WAIT_RESET = 8,
        DFU_STATE_DFU_UPLOAD_IDLE = 9,
        DFU_STATE_DFU_ERROR = 10,
        _DFU_STATE_MAX,
} DfuState;

/* DFU 1.1 section 6.1.2: bStatus. */
typedef enum DfuStatusCode {
        DFU_STATUS_OK = 0,
        DFU_STATUS_ERR_TARGET = 1,
        DFU_STATUS_ERR_FILE = 2,
        DFU_STATUS_ERR_WRITE = 3,
        DFU_STATUS_ERR_ERASE = 4,
        DFU_STATUS_ERR_CHECK_ERASED = 5,
        DFU_STATUS_ERR_PROG = 6,
        DFU_STATUS_ERR_VERIFY = 7,
        DFU_STATUS_ERR_ADDRESS = 8,
        DFU_STATUS_ERR_NOTDONE = 9,
        DFU_STATUS_ERR_FIRMWARE = 10,
        DFU_STATUS_ERR_VENDOR = 11,
        DFU_STATUS_ERR_USBR = 12,
        DFU_STATUS_ERR_POR = 13,
        DFU_STATUS_ERR_UNKNOWN = 14,
        DFU_STATUS_ERR_STALLEDPKT = 15,
        _DFU_STATUS_MAX,
} DfuStatusCode;

/* "dfuDNLOAD-IDLE", as the spec spells it; NULL when out of range. */
const char *dfu_state_to_string(DfuState s);
/* "errWRITE"; NULL when out of range. */
const char *dfu_status_to_string(DfuStatusCode s);
/* "the device could not program the memory"; NULL when out of range. */
const char *dfu_status_to_message(DfuStatusCode s);

#define DFU_STATUS_SIZE 6

typedef struct DfuStatus {
        DfuStatusCode status;
        uint32_t poll_timeout_ms; /* bwPollTimeout, 24 bits */
        DfuState state;
        uint8_t istring;
} DfuStatus;

/* DFU 1.1 section 6.1.2: decode the 6-byte GETSTATUS reply. -EBADMSG when
 * the length is not 6 or status/state are outside the spec's tables. */
int dfu_status_decode(const uint8_t *buf, size_t len, DfuStatus *ret);

/* DFU 1.1 section 4.1.3: the functional descriptor. */
#define DFU_FUNCTIONAL_DESCRIPTOR_TYPE 0x21
#define DFU_FUNCTIONAL_DESCRIPTOR_SIZE 9
enum {
        DFU_ATTR_CAN_DNLOAD = 1 << 0,
        DFU_ATTR_CAN_UPLOAD = 1 << 1,
        DFU_ATTR_MANIFESTATION_TOLERANT = 1 << 2,
        DFU_ATTR_WILL_DETACH = 1 << 3,
};
/* bcdDFUVersion of ST's DfuSe devices (UM0424). */
#define DFU_VERSION_DFUSE 0x011a

typedef struct DfuFunctionalDescriptor {
        uint8_t attributes;      /* bmAttributes, DFU_ATTR_* */
        uint16_t detach_timeout; /* wDetachTimeOut, ms */
        uint16_t transfer_size;  /* wTransferSize, bytes */
        uint16_t dfu_version;    /* bcdDFUVersion */
} DfuFunctionalDescriptor;

/*
 * Find the functional descriptor in a run of class-specific descriptors
 * (libusb's `extra` bytes). Some devices send it 7 bytes long (DFU 1.0, no
 * bcdDFUVersion): then dfu_version is 0x0100. Returns 0, -ENOENT when
 * absent, -EBADMSG when the descriptor run is malformed.
 */
int dfu_functional_descriptor_find(const uint8_t *extra, size_t len, DfuFunctionalDescriptor *ret);

/* UM0424 section 6: DfuSe commands, sent as DNLOAD with wValue=0. */
typedef enum DfuseCommand {
        DFUSE_COMMAND_SET_ADDRESS,
        DFUSE_COMMAND_ERASE_PAGE,
        DFUSE_COMMAND_MASS_ERASE,
        DFUSE_COMMAND_READ_UNPROTECT,
        _DFUSE_COMMAND_MAX,
} DfuseCommand;

#define DFUSE_COMMAND_MAX_SIZE 5

const char *dfuse_command_to_string(DfuseCommand c);
/* Encode into buf; returns the number of bytes (1 or 5). `address` is
 * ignored by MASS_ERASE and READ_UNPROTECT. */
size_t dfuse_command_encode(DfuseCommand c, uint32_t address, uint8_t buf[static DFUSE_COMMAND_MAX_SIZE]);

/* UM0424: data blocks use wBlockNum >= 2; block N addresses
 * last SET_ADDRESS + (N - 2) * wTransferSize. */
#define DFUSE_FIRST_DATA_BLOCK 2
