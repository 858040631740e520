/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The UsbTransport operations, and their libusb implementation for
 * sessions: one context per transport, open by port path or bus/device
 * number, control transfers with timeouts, string descriptors read raw,
 * DFU interface discovery. The one place where libusb's error codes become
 * negative errno.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec/usb-string.h"
#include "usb/usb-transport.h"
#include "util/macros.h"
#include "util/time-util.h"

/* USB 2.0 section 11.14: at most 7 tiers of hubs below the root. */
#define USB_MAX_PORT_DEPTH    7
#define USB_PORT_PATH_MAX     32
#define USB_STRING_TIMEOUT_MS 1000
#define USB_LANGID_EN_US      0x0409

typedef struct LibusbTransport {
        UsbTransport transport;
        libusb_context *ctx;
        libusb_device_handle *handle;
        char port_path[USB_PORT_PATH_MAX];
        int claimed_interface; /* -1: none */
} LibusbTransport;

static const UsbTransportOps libusb_transport_ops;

static LibusbTransport *libusb_transport(UsbTransport *t)
{
        return t && t->ops == &libusb_transport_ops ? (LibusbTransport *)t : NULL;
}

/* ---- the operations ---- */

UsbTransport *usb_transport_free(UsbTransport *t)
{
        if (t)
                t->ops->free(t);
        return NULL;
}

int usb_transport_control(UsbTransport *t, uint8_t request_type, uint8_t request, uint16_t value,
                          uint16_t index, void *data, uint16_t len, unsigned timeout_ms)
{
        if (timeout_ms == 0)
                return -EINVAL;
        return t->ops->control(t, request_type, request, value, index, data, len, timeout_ms);
}

int usb_transport_claim(UsbTransport *t, uint8_t interface, uint8_t alt)
{
        return t->ops->claim(t, interface, alt);
}

int usb_transport_reset(UsbTransport *t)
{
        return t->ops->reset(t);
}

int usb_transport_find_dfu(UsbTransport *t, UsbDfuInfo *ret)
{
        return t->ops->find_dfu(t, ret);
}

int usb_transport_find_bulk_interface(UsbTransport *t, uint8_t interface_class, UsbBulkInterface *ret)
{
        return t->ops->find_bulk_interface ? t->ops->find_bulk_interface(t, interface_class, ret) : -ENXIO;
}

int usb_transport_get_device_descriptor(UsbTransport *t, struct libusb_device_descriptor *ret)
{
        return t->ops->get_device_descriptor ? t->ops->get_device_descriptor(t, ret) : -EOPNOTSUPP;
}

int usb_transport_bulk(UsbTransport *t, uint8_t endpoint, void *data, int len, int *ret_transferred,
                       unsigned timeout_ms)
{
        *ret_transferred = 0;
        if (timeout_ms == 0)
                return -EINVAL;
        if (!t->ops->bulk)
                return -EOPNOTSUPP;
        return t->ops->bulk(t, endpoint, data, len, ret_transferred, timeout_ms);
}

int usb_transport_clear_halt(UsbTransport *t, uint8_t endpoint)
{
        return t->ops->clear_halt ? t->ops->clear_halt(t, endpoint) : 0;
}

const char *usb_transport_get_port_path(UsbTransport *t)
{
        return t->ops->get_port_path ? t->ops->get_port_path(t) : t->ops->kind;
}

uint64_t usb_transport_now_ms(UsbTransport *t)
{
        if (t->ops->now_ms)
                return t->ops->now_ms(t);
        return now_usec(CLOCK_MONOTONIC) / USEC_PER_MSEC;
}

void usb_transport_sleep_ms(UsbTransport *t, uint32_t ms)
{
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

        if (t->ops->sleep_ms) {
                t->ops->sleep_ms(t, ms);
                return;
        }
        while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) == EINTR)
                ;
}

/* USB 2.0 section 9.4.3: GET_DESCRIPTOR, wValue = type << 8 | index,
 * wIndex = language id. 255 is the most a one-byte bLength can claim. */
#define STRING_REQUEST_TYPE (LIBUSB_ENDPOINT_IN | LIBUSB_REQUEST_TYPE_STANDARD | LIBUSB_RECIPIENT_DEVICE)
#define STRING_VALUE(index) ((uint16_t)(LIBUSB_DT_STRING << 8 | (index)))

static int string_received(int r, const uint8_t *buf, size_t *ret_len)
{
        if (r < 0)
                return r;
        if (r < 2 || buf[1] != LIBUSB_DT_STRING)
                return -EBADMSG;
        *ret_len = (size_t)r;
        return 0;
}

int usb_transport_read_string(UsbTransport *t, uint8_t index, uint16_t langid, uint8_t buf[static 255],
                              size_t *ret_len)
{
        int r;

        r = usb_transport_control(t, STRING_REQUEST_TYPE, LIBUSB_REQUEST_GET_DESCRIPTOR, STRING_VALUE(index),
                                  langid, buf, 255, USB_STRING_TIMEOUT_MS);
        return string_received(r, buf, ret_len);
}

int usb_transport_read_string_utf8(UsbTransport *t, uint8_t index, char **ret)
{
        uint8_t buf[255];
        size_t len;
        uint16_t langid = USB_LANGID_EN_US;
        int r;

        r = usb_transport_read_string(t, 0, 0, buf, &len);
        if (r < 0)
                return r;
        if (len >= 4)
                langid = (uint16_t)(buf[2] | buf[3] << 8);

        r = usb_transport_read_string(t, index, langid, buf, &len);
        if (r < 0)
                return r;
        return usb_string_descriptor_decode(buf, len, ret, NULL);
}

void usb_dfu_info_clear(UsbDfuInfo *info)
{
        free(info->alts);
        *info = (UsbDfuInfo){};
}

/* ---- libusb ---- */

int usb_errno_from_libusb(int r)
{
        if (r >= 0)
                return r;

        switch ((enum libusb_error)r) {
        case LIBUSB_SUCCESS:
                return 0;
        case LIBUSB_ERROR_IO:
                return -EIO;
        case LIBUSB_ERROR_INVALID_PARAM:
                return -EINVAL;
        case LIBUSB_ERROR_ACCESS:
                return -EACCES;
        case LIBUSB_ERROR_NO_DEVICE:
                return -ENODEV;
        case LIBUSB_ERROR_NOT_FOUND:
                return -ENOENT;
        case LIBUSB_ERROR_BUSY:
                return -EBUSY;
        case LIBUSB_ERROR_TIMEOUT:
                return -ETIMEDOUT;
        case LIBUSB_ERROR_OVERFLOW:
                return -EOVERFLOW;
        case LIBUSB_ERROR_PIPE:
                return -EPIPE;
        case LIBUSB_ERROR_INTERRUPTED:
                return -EINTR;
        case LIBUSB_ERROR_NO_MEM:
                return -ENOMEM;
        case LIBUSB_ERROR_NOT_SUPPORTED:
                return -EOPNOTSUPP;
        case LIBUSB_ERROR_OTHER:
                return -EIO;
        }
        return -EIO;
}

int usb_port_path_format(uint8_t bus, const uint8_t *ports, size_t n_ports, char *buf, size_t size)
{
        size_t pos;
        int n;

        n = snprintf(buf, size, "%u-", bus);
        if (n < 0 || (size_t)n >= size)
                return -ENOBUFS;
        pos = (size_t)n;

        if (n_ports == 0) {
                /* libusb reports no ports for a root hub; Linux names it usbN, the
                 * port path "N-0" matches what dfu-util -p prints for it. */
                n = snprintf(buf + pos, size - pos, "0");
                return n < 0 || (size_t)n >= size - pos ? -ENOBUFS : 0;
        }
        for (size_t i = 0; i < n_ports; i++) {
                n = snprintf(buf + pos, size - pos, i == 0 ? "%u" : ".%u", ports[i]);
                if (n < 0 || (size_t)n >= size - pos)
                        return -ENOBUFS;
                pos += (size_t)n;
        }
        return 0;
}

static int device_port_path(libusb_device *dev, char *buf, size_t size)
{
        uint8_t ports[USB_MAX_PORT_DEPTH];
        int n;

        n = libusb_get_port_numbers(dev, ports, (int)ELEMENTSOF(ports));
        if (n < 0)
                return usb_errno_from_libusb(n);
        return usb_port_path_format(libusb_get_bus_number(dev), ports, (size_t)n, buf, size);
}

static void libusb_transport_free(UsbTransport *base)
{
        LibusbTransport *t = libusb_transport(base);

        if (t->handle) {
                if (t->claimed_interface >= 0)
                        (void)libusb_release_interface(t->handle, t->claimed_interface);
                libusb_close(t->handle);
        }
        if (t->ctx)
                libusb_exit(t->ctx);
        free(t);
}

static void libusb_free_device_listp(libusb_device ***l)
{
        if (*l)
                libusb_free_device_list(*l, 1);
}

/* Open the first device for which match() returns true. */
static int transport_open(UsbTransport **ret, bool (*match)(libusb_device *dev, const void *userdata),
                          const void *userdata)
{
        _cleanup_(usb_transport_freep) UsbTransport *base = NULL;
        _cleanup_(libusb_free_device_listp) libusb_device **list = NULL;
        LibusbTransport *t;
        ssize_t n;
        int r;

        t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        t->transport.ops = &libusb_transport_ops;
        t->claimed_interface = -1;
        base = &t->transport;

        r = libusb_init(&t->ctx);
        if (r < 0) {
                t->ctx = NULL;
                return usb_errno_from_libusb(r);
        }

        n = libusb_get_device_list(t->ctx, &list);
        if (n < 0)
                return usb_errno_from_libusb((int)n);

        for (ssize_t i = 0; i < n; i++) {
                if (!match(list[i], userdata))
                        continue;

                r = device_port_path(list[i], t->port_path, sizeof(t->port_path));
                if (r < 0)
                        return r;
                r = libusb_open(list[i], &t->handle);
                if (r < 0) {
                        t->handle = NULL;
                        return usb_errno_from_libusb(r);
                }
                /* DFU interfaces have no kernel driver; harmless where there is none. */
                (void)libusb_set_auto_detach_kernel_driver(t->handle, 1);
                *ret = TAKE_PTR(base);
                return 0;
        }
        return -ENODEV;
}

static bool match_port_path(libusb_device *dev, const void *userdata)
{
        char path[USB_PORT_PATH_MAX];

        if (device_port_path(dev, path, sizeof(path)) < 0)
                return false;
        return streq(path, (const char *)userdata);
}

typedef struct BusDev {
        uint8_t bus, dev;
} BusDev;

static bool match_bus_dev(libusb_device *dev, const void *userdata)
{
        const BusDev *bd = userdata;

        return libusb_get_bus_number(dev) == bd->bus && libusb_get_device_address(dev) == bd->dev;
}

int usb_transport_open_port_path(UsbTransport **ret, const char *port_path)
{
        if (!port_path || !*port_path || strlen(port_path) >= USB_PORT_PATH_MAX)
                return -EINVAL;
        return transport_open(ret, match_port_path, port_path);
}

int usb_transport_open_bus_dev(UsbTransport **ret, uint8_t bus, uint8_t dev)
{
        BusDev bd = { bus, dev };

        return transport_open(ret, match_bus_dev, &bd);
}

libusb_device_handle *usb_transport_get_handle(UsbTransport *base)
{
        LibusbTransport *t = libusb_transport(base);

        return t ? t->handle : NULL;
}

static const char *libusb_transport_get_port_path(UsbTransport *base)
{
        return libusb_transport(base)->port_path;
}

static int libusb_transport_get_device_descriptor(UsbTransport *base, struct libusb_device_descriptor *ret)
{
        return usb_errno_from_libusb(
                libusb_get_device_descriptor(libusb_get_device(libusb_transport(base)->handle), ret));
}

static int libusb_transport_bulk(UsbTransport *base, uint8_t endpoint, void *data, int len,
                                 int *ret_transferred, unsigned timeout_ms)
{
        return usb_errno_from_libusb(libusb_bulk_transfer(libusb_transport(base)->handle, endpoint, data,
                                                          len, ret_transferred, timeout_ms));
}

static int libusb_transport_clear_halt(UsbTransport *base, uint8_t endpoint)
{
        return usb_errno_from_libusb(libusb_clear_halt(libusb_transport(base)->handle, endpoint));
}

static int libusb_transport_claim(UsbTransport *base, uint8_t interface, uint8_t alt)
{
        LibusbTransport *t = libusb_transport(base);
        int r;

        if (t->claimed_interface >= 0 && t->claimed_interface != interface) {
                (void)libusb_release_interface(t->handle, t->claimed_interface);
                t->claimed_interface = -1;
        }
        if (t->claimed_interface < 0) {
                r = libusb_claim_interface(t->handle, interface);
                if (r < 0)
                        return usb_errno_from_libusb(r);
                t->claimed_interface = interface;
        }
        return usb_errno_from_libusb(libusb_set_interface_alt_setting(t->handle, interface, alt));
}

static int libusb_transport_reset(UsbTransport *base)
{
        return usb_errno_from_libusb(libusb_reset_device(libusb_transport(base)->handle));
}

static int libusb_transport_control(UsbTransport *base, uint8_t request_type, uint8_t request,
                                    uint16_t value, uint16_t index, void *data, uint16_t len,
                                    unsigned timeout_ms)
{
        return usb_errno_from_libusb(libusb_control_transfer(libusb_transport(base)->handle, request_type,
                                                             request, value, index, data, len, timeout_ms));
}

int usb_transport_read_string_raw(libusb_device_handle *handle, uint8_t index, uint16_t langid,
                                  uint8_t buf[static 255], size_t *ret_len)
{
        int r;

        r = libusb_control_transfer(handle, STRING_REQUEST_TYPE, LIBUSB_REQUEST_GET_DESCRIPTOR,
                                    STRING_VALUE(index), langid, buf, 255, USB_STRING_TIMEOUT_MS);
        return string_received(usb_errno_from_libusb(r), buf, ret_len);
}

static void libusb_free_config_descriptorp(struct libusb_config_descriptor **c)
{
        if (*c)
                libusb_free_config_descriptor(*c);
}

static int libusb_transport_find_dfu(UsbTransport *base, UsbDfuInfo *ret)
{
        LibusbTransport *t = libusb_transport(base);
        _cleanup_(libusb_free_config_descriptorp) struct libusb_config_descriptor *cfg = NULL;
        UsbDfuInfo info = {};
        int r;

        r = libusb_get_active_config_descriptor(libusb_get_device(t->handle), &cfg);
        if (r < 0)
                return usb_errno_from_libusb(r);

        for (uint8_t i = 0; i < cfg->bNumInterfaces; i++) {
                const struct libusb_interface *intf = &cfg->interface[i];

                for (int a = 0; a < intf->num_altsetting; a++) {
                        const struct libusb_interface_descriptor *d = &intf->altsetting[a];
                        UsbDfuAltSetting *alts;

                        /* DFU 1.1 section 4.2.3: application-specific class 0xFE, subclass 1. */
                        if (d->bInterfaceClass != LIBUSB_CLASS_APPLICATION || d->bInterfaceSubClass != 0x01)
                                continue;

                        alts = realloc(info.alts, (info.n_alts + 1) * sizeof(*alts));
                        if (!alts) {
                                usb_dfu_info_clear(&info);
                                return -ENOMEM;
                        }
                        info.alts = alts;
                        info.alts[info.n_alts++] = (UsbDfuAltSetting){
                                .interface = d->bInterfaceNumber,
                                .alt = d->bAlternateSetting,
                                .protocol = d->bInterfaceProtocol,
                                .i_interface = d->iInterface,
                        };

                        if (!info.has_functional && d->extra_length > 0 &&
                            dfu_functional_descriptor_find(d->extra, (size_t)d->extra_length,
                                                           &info.functional) >= 0)
                                info.has_functional = true;
                }
        }
        if (info.n_alts == 0)
                return -ENXIO;

        if (!info.has_functional && cfg->extra_length > 0 &&
            dfu_functional_descriptor_find(cfg->extra, (size_t)cfg->extra_length, &info.functional) >= 0)
                info.has_functional = true;

        *ret = info;
        return 0;
}

static int libusb_transport_find_bulk_interface(UsbTransport *base, uint8_t interface_class,
                                                UsbBulkInterface *ret)
{
        LibusbTransport *t = libusb_transport(base);
        _cleanup_(libusb_free_config_descriptorp) struct libusb_config_descriptor *cfg = NULL;
        int r;

        r = libusb_get_active_config_descriptor(libusb_get_device(t->handle), &cfg);
        if (r < 0)
                return usb_errno_from_libusb(r);
        for (uint8_t i = 0; i < cfg->bNumInterfaces; i++) {
                const struct libusb_interface_descriptor *d;
                uint8_t in = 0, out = 0;

                if (cfg->interface[i].num_altsetting < 1)
                        continue;
                d = &cfg->interface[i].altsetting[0];
                if (d->bInterfaceClass != interface_class || d->bNumEndpoints != 2)
                        continue;
                for (uint8_t e = 0; e < d->bNumEndpoints; e++) {
                        const struct libusb_endpoint_descriptor *ep = &d->endpoint[e];
                        if ((ep->bmAttributes & LIBUSB_TRANSFER_TYPE_MASK) != LIBUSB_TRANSFER_TYPE_BULK)
                                continue;
                        if (ep->bEndpointAddress & LIBUSB_ENDPOINT_IN)
                                in = ep->bEndpointAddress;
                        else
                                out = ep->bEndpointAddress;
                }
                if (in && out) {
                        *ret = (UsbBulkInterface){ .interface = d->bInterfaceNumber,
                                                   .ep_in = in,
                                                   .ep_out = out };
                        return 0;
                }
        }
        return -ENXIO;
}

static const UsbTransportOps libusb_transport_ops = {
        .kind = "libusb",
        .control = libusb_transport_control,
        .claim = libusb_transport_claim,
        .reset = libusb_transport_reset,
        .find_dfu = libusb_transport_find_dfu,
        .find_bulk_interface = libusb_transport_find_bulk_interface,
        .get_device_descriptor = libusb_transport_get_device_descriptor,
        .bulk = libusb_transport_bulk,
        .clear_halt = libusb_transport_clear_halt,
        .get_port_path = libusb_transport_get_port_path,
        .free = libusb_transport_free,
};
