/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * USB DFU 1.1 (usb.org, "Device Class Specification for Device Firmware
 * Upgrade", version 1.1) and ST's DfuSe extensions (UM0424, AN3156).
 */

#include <errno.h>

#include "usb/dfu-proto.h"
#include "util/macros.h"

static const char *const dfu_state_table[_DFU_STATE_MAX] = {
        [DFU_STATE_APP_IDLE] = "appIDLE",
        [DFU_STATE_APP_DETACH] = "appDETACH",
        [DFU_STATE_DFU_IDLE] = "dfuIDLE",
        [DFU_STATE_DFU_DNLOAD_SYNC] = "dfuDNLOAD-SYNC",
        [DFU_STATE_DFU_DNBUSY] = "dfuDNBUSY",
        [DFU_STATE_DFU_DNLOAD_IDLE] = "dfuDNLOAD-IDLE",
        [DFU_STATE_DFU_MANIFEST_SYNC] = "dfuMANIFEST-SYNC",
        [DFU_STATE_DFU_MANIFEST] = "dfuMANIFEST",
        [DFU_STATE_DFU_MANIFEST_WAIT_RESET] = "dfuMANIFEST-WAIT-RESET",
        [DFU_STATE_DFU_UPLOAD_IDLE] = "dfuUPLOAD-IDLE",
        [DFU_STATE_DFU_ERROR] = "dfuERROR",
};

static const char *const dfu_status_table[_DFU_STATUS_MAX] = {
        [DFU_STATUS_OK] = "OK",
        [DFU_STATUS_ERR_TARGET] = "errTARGET",
        [DFU_STATUS_ERR_FILE] = "errFILE",
        [DFU_STATUS_ERR_WRITE] = "errWRITE",
        [DFU_STATUS_ERR_ERASE] = "errERASE",
        [DFU_STATUS_ERR_CHECK_ERASED] = "errCHECK_ERASED",
        [DFU_STATUS_ERR_PROG] = "errPROG",
        [DFU_STATUS_ERR_VERIFY] = "errVERIFY",
        [DFU_STATUS_ERR_ADDRESS] = "errADDRESS",
        [DFU_STATUS_ERR_NOTDONE] = "errNOTDONE",
        [DFU_STATUS_ERR_FIRMWARE] = "errFIRMWARE",
        [DFU_STATUS_ERR_VENDOR] = "errVENDOR",
        [DFU_STATUS_ERR_USBR] = "errUSBR",
        [DFU_STATUS_ERR_POR] = "errPOR",
        [DFU_STATUS_ERR_UNKNOWN] = "errUNKNOWN",
        [DFU_STATUS_ERR_STALLEDPKT] = "errSTALLEDPKT",
};

/* Wording follows the descriptions in DFU 1.1 section 6.1.2, table 6.2. */
static const char *const dfu_status_message_table[_DFU_STATUS_MAX] = {
        [DFU_STATUS_OK] = "no error",
        [DFU_STATUS_ERR_TARGET] = "the file is not meant for this device",
        [DFU_STATUS_ERR_FILE] = "the file is meant for this device but failed a vendor-specific check",
        [DFU_STATUS_ERR_WRITE] = "the device could not program the memory",
        [DFU_STATUS_ERR_ERASE] = "the memory erase failed",
        [DFU_STATUS_ERR_CHECK_ERASED] = "the memory was not blank after the erase",
        [DFU_STATUS_ERR_PROG] = "the program memory function failed",
        [DFU_STATUS_ERR_VERIFY] = "the programmed memory failed the device's verification",
        [DFU_STATUS_ERR_ADDRESS] = "the address is outside the valid range (or protected)",
        [DFU_STATUS_ERR_NOTDONE] = "the device received the end of the download too early",
        [DFU_STATUS_ERR_FIRMWARE] = "the device firmware is corrupt and cannot return to run-time mode",
        [DFU_STATUS_ERR_VENDOR] = "a vendor-specific error",
        [DFU_STATUS_ERR_USBR] = "the device saw an unexpected USB reset",
        [DFU_STATUS_ERR_POR] = "the device saw an unexpected power-on reset",
        [DFU_STATUS_ERR_UNKNOWN] = "an unknown error",
        [DFU_STATUS_ERR_STALLEDPKT] = "the device stalled an unexpected request",
};

static const char *const dfuse_command_table[_DFUSE_COMMAND_MAX] = {
        [DFUSE_COMMAND_SET_ADDRESS] = "SET_ADDRESS",
        [DFUSE_COMMAND_ERASE_PAGE] = "ERASE_PAGE",
        [DFUSE_COMMAND_MASS_ERASE] = "MASS_ERASE",
        [DFUSE_COMMAND_READ_UNPROTECT] = "READ_UNPROTECT",
};

const char *dfu_state_to_string(DfuState s)
{
        return (unsigned)s < _DFU_STATE_MAX ? dfu_state_table[s] : NULL;
}

const char *dfu_status_to_string(DfuStatusCode s)
{
        return (unsigned)s < _DFU_STATUS_MAX ? dfu_status_table[s] : NULL;
}

const char *dfu_status_to_message(DfuStatusCode s)
{
        return (unsigned)s < _DFU_STATUS_MAX ? dfu_status_message_table[s] : NULL;
}

const char *dfuse_command_to_string(DfuseCommand c)
{
        return (unsigned)c < _DFUSE_COMMAND_MAX ? dfuse_command_table[c] : NULL;
}

int dfu_status_decode(const uint8_t *buf, size_t len, DfuStatus *ret)
{
        if (len != DFU_STATUS_SIZE)
                return -EBADMSG;
        if (buf[0] >= _DFU_STATUS_MAX || buf[4] >= _DFU_STATE_MAX)
                return -EBADMSG;

        *ret = (DfuStatus){
                .status = (DfuStatusCode)buf[0],
                .poll_timeout_ms = (uint32_t)buf[1] | (uint32_t)buf[2] << 8 | (uint32_t)buf[3] << 16,
                .state = (DfuState)buf[4],
                .istring = buf[5],
        };
        return 0;
}

int dfu_functional_descriptor_find(const uint8_t *extra, size_t len, DfuFunctionalDescriptor *ret)
{
        size_t pos = 0;

        while (pos < len) {
                size_t dlen = extra[pos];

                /* A zero or overlong bLength would loop forever or read past the run. */
                if (dlen < 2 || dlen > len - pos)
                        return -EBADMSG;
                if (extra[pos + 1] == DFU_FUNCTIONAL_DESCRIPTOR_TYPE) {
                        const uint8_t *d = extra + pos;

                        /* DFU 1.0 devices send 7 bytes without bcdDFUVersion. */
                        if (dlen < 7)
                                return -EBADMSG;
                        *ret = (DfuFunctionalDescriptor){
                                .attributes = d[2],
                                .detach_timeout = (uint16_t)(d[3] | d[4] << 8),
                                .transfer_size = (uint16_t)(d[5] | d[6] << 8),
                                .dfu_version = dlen >= DFU_FUNCTIONAL_DESCRIPTOR_SIZE
                                                       ? (uint16_t)(d[7] | d[8] << 8)
                                                       : 0x0100,
                        };
                        return 0;
                }
                pos += dlen;
        }
        return -ENOENT;
}

size_t dfuse_command_encode(DfuseCommand c, uint32_t address, uint8_t buf[static DFUSE_COMMAND_MAX_SIZE])
{
        switch (c) {
        case DFUSE_COMMAND_SET_ADDRESS:
        case DFUSE_COMMAND_ERASE_PAGE:
                buf[0] = c == DFUSE_COMMAND_SET_ADDRESS ? 0x21 : 0x41;
                buf[1] = (uint8_t)address;
                buf[2] = (uint8_t)(address >> 8);
                buf[3] = (uint8_t)(address >> 16);
                buf[4] = (uint8_t)(address >> 24);
                return 5;
        case DFUSE_COMMAND_MASS_ERASE:
                /* UM0424 6.1.3: the erase command without an address erases everything. */
                buf[0] = 0x41;
                return 1;
        case DFUSE_COMMAND_READ_UNPROTECT:
                buf[0] = 0x92;
                return 1;
        case _DFUSE_COMMAND_MAX:
                break;
        }
        return 0;
}
