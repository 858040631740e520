/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The USB boundary the sessions talk to. A session (dfu-session.c,
 * dfu-flash.c, picoboot-session.c) never sees libusb: it sends control and
 * bulk transfers with timeouts, claims an interface, resets the port and
 * waits for the device through these operations. usb-transport.c implements them with libusb
 * (one libusb_context per transport, so sessions on different boards never
 * share libusb state); a unit test implements them over an in-process
 * device model. Keep a libusb transport open only while a job needs it:
 * under emulation an open handle makes libusb's event handling spin
 * (notes/emulation.md).
 *
 * Every function returns >= 0 or a negative errno; libusb's own codes are
 * translated in exactly one place, usb_errno_from_libusb().
 */

#include <libusb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "usb/dfu-proto.h"
#include "util/macros.h"

typedef struct UsbTransport UsbTransport;

typedef struct UsbDfuAltSetting {
        uint8_t interface;   /* bInterfaceNumber */
        uint8_t alt;         /* bAlternateSetting */
        uint8_t protocol;    /* 1: run-time, 2: DFU mode */
        uint8_t i_interface; /* string index of the alt name (DfuSe: the layout) */
} UsbDfuAltSetting;

typedef struct UsbDfuInfo {
        UsbDfuAltSetting *alts; /* malloc'd */
        size_t n_alts;
        DfuFunctionalDescriptor functional;
        bool has_functional;
} UsbDfuInfo;

/* A vendor interface with one bulk IN and one bulk OUT endpoint (PICOBOOT). */
typedef struct UsbBulkInterface {
        uint8_t interface;
        uint8_t ep_in, ep_out;
} UsbBulkInterface;

typedef struct UsbTransportOps {
        const char *kind; /* "libusb", "model", ... for messages */
        /*
         * One control transfer. bmRequestType's direction bit picks IN or
         * OUT. Returns the number of bytes transferred; -ENODEV when the
         * device is gone, -EPIPE for a stall, -ETIMEDOUT after timeout_ms.
         */
        int (*control)(UsbTransport *t, uint8_t request_type, uint8_t request, uint16_t value,
                       uint16_t index, void *data, uint16_t len, unsigned timeout_ms);
        /* Claim `interface` (released on free) and select `alt`. */
        int (*claim)(UsbTransport *t, uint8_t interface, uint8_t alt);
        /* USB port reset. -ENODEV or -ENOENT when the device re-enumerated as
         * something else or vanished, which after a DFU leave is the expected
         * outcome. */
        int (*reset)(UsbTransport *t);
        /*
         * The DFU interfaces (class 0xFE, subclass 0x01) of the active
         * configuration, every alt setting, and the functional descriptor.
         * -ENXIO when the device has no DFU interface.
         */
        int (*find_dfu)(UsbTransport *t, UsbDfuInfo *ret);
        /* The bulk side, optional for a transport of DFU devices (the
         * wrappers answer -ENXIO / -EOPNOTSUPP without it). The first
         * interface of class `interface_class` whose alt setting 0 has
         * exactly a bulk IN and a bulk OUT endpoint; -ENXIO when none. */
        int (*find_bulk_interface)(UsbTransport *t, uint8_t interface_class, UsbBulkInterface *ret);
        int (*get_device_descriptor)(UsbTransport *t, struct libusb_device_descriptor *ret);
        /* A bulk transfer; the endpoint's direction bit picks IN or OUT.
         * *ret_transferred gets the bytes moved, also on failure. */
        int (*bulk)(UsbTransport *t, uint8_t endpoint, void *data, int len, int *ret_transferred,
                    unsigned timeout_ms);
        /* Clear the host side of a halted endpoint. Optional. */
        int (*clear_halt)(UsbTransport *t, uint8_t endpoint);
        /* Where the device is ("1-1.3"), for messages. Optional. */
        const char *(*get_port_path)(UsbTransport *t);
        /* Optional: the clock the session waits by (bwPollTimeout, deadlines),
         * in ms. NULL: CLOCK_MONOTONIC and a real sleep. A model's transport
         * supplies its own so that a device busy for seconds costs no time. */
        uint64_t (*now_ms)(UsbTransport *t);
        void (*sleep_ms)(UsbTransport *t, uint32_t ms);
        void (*free)(UsbTransport *t);
} UsbTransportOps;

struct UsbTransport {
        const UsbTransportOps *ops;
};

UsbTransport *usb_transport_free(UsbTransport *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(UsbTransport *, usb_transport_free);

/* `timeout_ms` of 0 is refused: every wait has a timeout. */
int usb_transport_control(UsbTransport *t, uint8_t request_type, uint8_t request, uint16_t value,
                          uint16_t index, void *data, uint16_t len, unsigned timeout_ms);
int usb_transport_claim(UsbTransport *t, uint8_t interface, uint8_t alt);
int usb_transport_reset(UsbTransport *t);
/* The STM32 ROM puts the functional descriptor after the last alt setting;
 * it is looked for after each alt setting and in the configuration's extra
 * bytes. */
int usb_transport_find_dfu(UsbTransport *t, UsbDfuInfo *ret);
void usb_dfu_info_clear(UsbDfuInfo *info);
int usb_transport_find_bulk_interface(UsbTransport *t, uint8_t interface_class, UsbBulkInterface *ret);
int usb_transport_get_device_descriptor(UsbTransport *t, struct libusb_device_descriptor *ret);
/* `timeout_ms` of 0 is refused. -EOPNOTSUPP when the transport has no bulk endpoints. */
int usb_transport_bulk(UsbTransport *t, uint8_t endpoint, void *data, int len, int *ret_transferred,
                       unsigned timeout_ms);
int usb_transport_clear_halt(UsbTransport *t, uint8_t endpoint);
/* The port path ("1-1.3"), or the transport's kind when it has none. */
const char *usb_transport_get_port_path(UsbTransport *t);
uint64_t usb_transport_now_ms(UsbTransport *t);
void usb_transport_sleep_ms(UsbTransport *t, uint32_t ms);

/*
 * GET_DESCRIPTOR(STRING, index, langid) into a 255-byte buffer, returning
 * the bytes actually received in *ret_len. Some ROMs claim a bLength
 * larger than what they send (STM32F42x: 166 claimed, 112 sent), so the
 * caller decodes by *ret_len, not by buf[0]. Index 0 returns the language
 * id list.
 */
int usb_transport_read_string(UsbTransport *t, uint8_t index, uint16_t langid, uint8_t buf[static 255],
                              size_t *ret_len);
/* Read string `index` in the device's first language (0x0409 when the
 * device lists none) and decode it by the bytes received
 * (codec/usb-string.h). */
int usb_transport_read_string_utf8(UsbTransport *t, uint8_t index, char **ret);

/* ---- the libusb transport ---- */

/* LIBUSB_ERROR_NO_DEVICE -> -ENODEV, TIMEOUT -> -ETIMEDOUT, PIPE -> -EPIPE, ...;
 * values >= 0 are returned unchanged. */
int usb_errno_from_libusb(int r);

/* "1-1.3" from bus 1 and ports [1, 3]; "1-0" for a root hub. */
int usb_port_path_format(uint8_t bus, const uint8_t *ports, size_t n_ports, char *buf, size_t size);

/* Open the device at a physical port path ("1-1.3") or by bus and device
 * number. -ENODEV when no such device is attached. */
int usb_transport_open_port_path(UsbTransport **ret, const char *port_path);
int usb_transport_open_bus_dev(UsbTransport **ret, uint8_t bus, uint8_t dev);

/* The libusb handle; NULL for a transport that is not libusb's. */
libusb_device_handle *usb_transport_get_handle(UsbTransport *t);

/* usb_transport_read_string() on a bare libusb handle (the inventory reads
 * layouts with it). */
int usb_transport_read_string_raw(libusb_device_handle *handle, uint8_t index, uint16_t langid,
                                  uint8_t buf[static 255], size_t *ret_len);
