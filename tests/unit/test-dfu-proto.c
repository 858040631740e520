/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Tables for the DFU 1.1 / DfuSe codec (daemon/usb/dfu-proto.c) and the
 * pure helpers of the USB transport. */
#include <errno.h>

#include "util/macros.h"
#include "tests.h"
#include "usb/dfu-proto.h"
#include "usb/usb-transport.h"

static void test_strings(void)
{
        static const struct {
                DfuState state;
                const char *name;
        } states[] = {
                { DFU_STATE_APP_IDLE, "appIDLE" },
                { DFU_STATE_APP_DETACH, "appDETACH" },
                { DFU_STATE_DFU_IDLE, "dfuIDLE" },
                { DFU_STATE_DFU_DNLOAD_SYNC, "dfuDNLOAD-SYNC" },
                { DFU_STATE_DFU_DNBUSY, "dfuDNBUSY" },
                { DFU_STATE_DFU_DNLOAD_IDLE, "dfuDNLOAD-IDLE" },
                { DFU_STATE_DFU_MANIFEST_SYNC, "dfuMANIFEST-SYNC" },
                { DFU_STATE_DFU_MANIFEST, "dfuMANIFEST" },
                { DFU_STATE_DFU_MANIFEST_WAIT_RESET, "dfuMANIFEST-WAIT-RESET" },
                { DFU_STATE_DFU_UPLOAD_IDLE, "dfuUPLOAD-IDLE" },
                { DFU_STATE_DFU_ERROR, "dfuERROR" },
        };
        static const struct {
                DfuStatusCode status;
                const char *name;
        } statuses[] = {
                { DFU_STATUS_OK, "OK" },
                { DFU_STATUS_ERR_TARGET, "errTARGET" },
                { DFU_STATUS_ERR_FILE, "errFILE" },
                { DFU_STATUS_ERR_WRITE, "errWRITE" },
                { DFU_STATUS_ERR_ERASE, "errERASE" },
                { DFU_STATUS_ERR_CHECK_ERASED, "errCHECK_ERASED" },
                { DFU_STATUS_ERR_PROG, "errPROG" },
                { DFU_STATUS_ERR_VERIFY, "errVERIFY" },
                { DFU_STATUS_ERR_ADDRESS, "errADDRESS" },
                { DFU_STATUS_ERR_NOTDONE, "errNOTDONE" },
                { DFU_STATUS_ERR_FIRMWARE, "errFIRMWARE" },
                { DFU_STATUS_ERR_VENDOR, "errVENDOR" },
                { DFU_STATUS_ERR_USBR, "errUSBR" },
                { DFU_STATUS_ERR_POR, "errPOR" },
                { DFU_STATUS_ERR_UNKNOWN, "errUNKNOWN" },
                { DFU_STATUS_ERR_STALLEDPKT, "errSTALLEDPKT" },
        };

        CHECK_INT(ELEMENTSOF(states), _DFU_STATE_MAX);
        for (size_t i = 0; i < ELEMENTSOF(states); i++) {
                CHECK_INT(states[i].state, i);
                CHECK_STR(dfu_state_to_string(states[i].state), states[i].name);
        }
        CHECK(!dfu_state_to_string(_DFU_STATE_MAX));

        CHECK_INT(ELEMENTSOF(statuses), _DFU_STATUS_MAX);
        for (size_t i = 0; i < ELEMENTSOF(statuses); i++) {
                CHECK_INT(statuses[i].status, i);
                CHECK_STR(dfu_status_to_string(statuses[i].status), statuses[i].name);
                CHECK(dfu_status_to_message(statuses[i].status) != NULL);
        }
        CHECK(!dfu_status_to_string(_DFU_STATUS_MAX));
        CHECK(!dfu_status_to_message(_DFU_STATUS_MAX));
        CHECK_STR(dfu_status_to_message(DFU_STATUS_ERR_WRITE), "the device could not program the memory");

        CHECK_INT(DFU_REQUEST_DNLOAD, 1);
        CHECK_INT(DFU_REQUEST_ABORT, 6);
        CHECK_STR(dfuse_command_to_string(DFUSE_COMMAND_MASS_ERASE), "MASS_ERASE");
}

static void test_status_decode(void)
{
        static const struct {
                uint8_t buf[8];
                size_t len;
                int ret;
                DfuStatusCode status;
                uint32_t poll;
                DfuState state;
                uint8_t istring;
        } cases[] = {
                { { 0, 0, 0, 0, 2, 0 }, 6, 0, DFU_STATUS_OK, 0, DFU_STATE_DFU_IDLE, 0 },
                /* the STM32 ROM after power-up */
                { { 10, 0, 0, 0, 10, 0 }, 6, 0, DFU_STATUS_ERR_FIRMWARE, 0, DFU_STATE_DFU_ERROR, 0 },
                /* 24-bit little-endian poll timeout */
                { { 0, 0x64, 0, 0, 4, 0 }, 6, 0, DFU_STATUS_OK, 100, DFU_STATE_DFU_DNBUSY, 0 },
                { { 0, 0xb8, 0x88, 0x00, 4, 0 }, 6, 0, DFU_STATUS_OK, 35000, DFU_STATE_DFU_DNBUSY, 0 },
                { { 0, 0xff, 0xff, 0xff, 4, 7 }, 6, 0, DFU_STATUS_OK, 0xffffff, DFU_STATE_DFU_DNBUSY, 7 },
                { { 3, 0, 0, 0, 10, 0 }, 6, 0, DFU_STATUS_ERR_WRITE, 0, DFU_STATE_DFU_ERROR, 0 },
                { { 15, 0, 0, 0, 10, 0 }, 6, 0, DFU_STATUS_ERR_STALLEDPKT, 0, DFU_STATE_DFU_ERROR, 0 },
                /* wrong lengths */
                { { 0, 0, 0, 0, 2 }, 5, -EBADMSG },
                { { 0, 0, 0, 0, 2, 0, 0 }, 7, -EBADMSG },
                { {}, 0, -EBADMSG },
                /* outside the tables */
                { { 16, 0, 0, 0, 2, 0 }, 6, -EBADMSG },
                { { 0, 0, 0, 0, 11, 0 }, 6, -EBADMSG },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                DfuStatus st = { .status = 99 };
                int r = dfu_status_decode(cases[i].buf, cases[i].len, &st);

                CHECK_INT(r, cases[i].ret);
                if (r < 0) {
                        CHECK_INT(st.status, 99); /* untouched on failure */
                        continue;
                }
                CHECK_INT(st.status, cases[i].status);
                CHECK_INT(st.poll_timeout_ms, cases[i].poll);
                CHECK_INT(st.state, cases[i].state);
                CHECK_INT(st.istring, cases[i].istring);
        }
}

static void test_functional(void)
{
        static const struct {
                uint8_t extra[32];
                size_t len;
                int ret;
                uint8_t attributes;
                uint16_t detach, xfer, version;
        } cases[] = {
                /* STM32 ROM: bmAttributes 0x0b, wDetachTimeOut 255, wTransferSize 2048, DfuSe 1.1a */
                { { 9, 0x21, 0x0b, 0xff, 0x00, 0x00, 0x08, 0x1a, 0x01 },
                  9,
                  0,
                  0x0b,
                  255,
                  2048,
                  DFU_VERSION_DFUSE },
                /* after another class descriptor */
                { { 3, 0x24, 0, 9, 0x21, 0x07, 0x10, 0x00, 0x00, 0x04, 0x10, 0x01 },
                  12,
                  0,
                  0x07,
                  16,
                  1024,
                  0x0110 },
                /* DFU 1.0: 7 bytes, no bcdDFUVersion */
                { { 7, 0x21, 0x03, 0x00, 0x00, 0x40, 0x00 }, 7, 0, 0x03, 0, 64, 0x0100 },
                { { 3, 0x24, 0 }, 3, -ENOENT },
                { {}, 0, -ENOENT },
                /* bLength 0 would loop, bLength past the end would overread */
                { { 0, 0x21 }, 2, -EBADMSG },
                { { 9, 0x21, 0x0b, 0xff, 0x00, 0x00, 0x08 }, 7, -EBADMSG },
                { { 5, 0x21, 0x0b, 0xff, 0x00 }, 5, -EBADMSG },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                DfuFunctionalDescriptor d = {};
                int r = dfu_functional_descriptor_find(cases[i].extra, cases[i].len, &d);

                CHECK_INT(r, cases[i].ret);
                if (r < 0)
                        continue;
                CHECK_INT(d.attributes, cases[i].attributes);
                CHECK_INT(d.detach_timeout, cases[i].detach);
                CHECK_INT(d.transfer_size, cases[i].xfer);
                CHECK_INT(d.dfu_version, cases[i].version);
        }
}

static void test_dfuse_commands(void)
{
        static const struct {
                DfuseCommand cmd;
                uint32_t address;
                size_t len;
                uint8_t bytes[5];
        } cases[] = {
                { DFUSE_COMMAND_SET_ADDRESS, 0x08008000, 5, { 0x21, 0x00, 0x80, 0x00, 0x08 } },
                { DFUSE_COMMAND_ERASE_PAGE, 0x08020000, 5, { 0x41, 0x00, 0x00, 0x02, 0x08 } },
                { DFUSE_COMMAND_ERASE_PAGE, 0x12345678, 5, { 0x41, 0x78, 0x56, 0x34, 0x12 } },
                { DFUSE_COMMAND_MASS_ERASE, 0x08000000, 1, { 0x41 } },
                { DFUSE_COMMAND_READ_UNPROTECT, 0, 1, { 0x92 } },
                { _DFUSE_COMMAND_MAX, 0, 0, {} },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                uint8_t buf[DFUSE_COMMAND_MAX_SIZE] = {};
                size_t n = dfuse_command_encode(cases[i].cmd, cases[i].address, buf);

                CHECK_INT(n, cases[i].len);
                CHECK(memcmp(buf, cases[i].bytes, n) == 0);
        }
}

static void test_port_path(void)
{
        static const struct {
                uint8_t bus;
                uint8_t ports[7];
                size_t n;
                size_t size;
                int ret;
                const char *path;
        } cases[] = {
                { 1, { 1, 3 }, 2, 32, 0, "1-1.3" },
                { 1, { 1, 1 }, 2, 32, 0, "1-1.1" },
                { 3, { 2 }, 1, 32, 0, "3-2" },
                { 1, {}, 0, 32, 0, "1-0" },
                { 12, { 1, 2, 3, 4, 5, 6, 7 }, 7, 32, 0, "12-1.2.3.4.5.6.7" },
                { 1, { 1, 3 }, 2, 5, -ENOBUFS, NULL },
                { 1, { 1, 3 }, 2, 6, 0, "1-1.3" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                char buf[32];
                int r = usb_port_path_format(cases[i].bus, cases[i].ports, cases[i].n, buf, cases[i].size);

                CHECK_INT(r, cases[i].ret);
                if (r >= 0)
                        CHECK_STR(buf, cases[i].path);
        }

        static const struct {
                int libusb;
                int errno_value;
        } errors[] = {
                { LIBUSB_SUCCESS, 0 },
                { 17, 17 },
                { LIBUSB_ERROR_IO, -EIO },
                { LIBUSB_ERROR_INVALID_PARAM, -EINVAL },
                { LIBUSB_ERROR_ACCESS, -EACCES },
                { LIBUSB_ERROR_NO_DEVICE, -ENODEV },
                { LIBUSB_ERROR_NOT_FOUND, -ENOENT },
                { LIBUSB_ERROR_BUSY, -EBUSY },
                { LIBUSB_ERROR_TIMEOUT, -ETIMEDOUT },
                { LIBUSB_ERROR_OVERFLOW, -EOVERFLOW },
                { LIBUSB_ERROR_PIPE, -EPIPE },
                { LIBUSB_ERROR_INTERRUPTED, -EINTR },
                { LIBUSB_ERROR_NO_MEM, -ENOMEM },
                { LIBUSB_ERROR_NOT_SUPPORTED, -EOPNOTSUPP },
                { LIBUSB_ERROR_OTHER, -EIO },
                { -1000, -EIO },
        };
        for (size_t i = 0; i < ELEMENTSOF(errors); i++)
                CHECK_INT(usb_errno_from_libusb(errors[i].libusb), errors[i].errno_value);
}

int main(void)
{
        test_strings();
        test_status_decode();
        test_functional();
        test_dfuse_commands();
        test_port_path();
        TESTS_EXIT();
}
