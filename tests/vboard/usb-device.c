/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <sys/ioctl.h>
#include <linux/usbdevice_fs.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "string-descriptor.h"
#include "tty-port.h"
#include "usb-device.h"

#define SYS_USB1 "/sys/devices/pci0000:00/0000:00:14.0/usb1"
#define SYS_HUB  SYS_USB1 "/1-1"

typedef struct PendingUrb {
        UMockdevIoctlClient *client;
        UMockdevIoctlData *urb_data;
        uint64_t ready_us;
        unsigned long user_addr;
} PendingUrb;

/* ---- descriptors ---------------------------------------------------- */

static void put8(GByteArray *a, uint8_t v)
{
        g_byte_array_append(a, &v, 1);
}

static void put16(GByteArray *a, uint16_t v)
{
        put8(a, v & 0xFF);
        put8(a, v >> 8);
}

static GBytes *device_descriptor(uint8_t cls, uint16_t vid, uint16_t pid, uint16_t bcd, bool strings)
{
        GByteArray *a = g_byte_array_new();
        /* USB 2.0 9.6.1 */
        put8(a, 18);
        put8(a, 1);
        put16(a, 0x0200);
        put8(a, cls);
        put8(a, 0);
        put8(a, cls == 9 ? 1 : 0);
        put8(a, 64);
        put16(a, vid);
        put16(a, pid);
        put16(a, bcd);
        put8(a, strings ? 1 : 0);
        put8(a, strings ? 2 : 0);
        put8(a, strings ? 3 : 0);
        put8(a, 1);
        return g_byte_array_free_to_bytes(a);
}

static void config_header(GByteArray *a, uint8_t n_interfaces)
{
        /* USB 2.0 9.6.3; wTotalLength patched at the end */
        put8(a, 9);
        put8(a, 2);
        put16(a, 0);
        put8(a, n_interfaces);
        put8(a, 1);
        put8(a, 0);
        put8(a, 0xC0);
        put8(a, 50);
}

static GBytes *config_finish(GByteArray *a)
{
        a->data[2] = a->len & 0xFF;
        a->data[3] = a->len >> 8;
        return g_byte_array_free_to_bytes(a);
}

static void interface(GByteArray *a, uint8_t num, uint8_t alt, uint8_t n_ep, uint8_t cls, uint8_t sub,
                      uint8_t proto, uint8_t istr)
{
        put8(a, 9);
        put8(a, 4);
        put8(a, num);
        put8(a, alt);
        put8(a, n_ep);
        put8(a, cls);
        put8(a, sub);
        put8(a, proto);
        put8(a, istr);
}

static void endpoint(GByteArray *a, uint8_t addr, uint8_t attr, uint16_t size, uint8_t interval)
{
        put8(a, 7);
        put8(a, 5);
        put8(a, addr);
        put8(a, attr);
        put16(a, size);
        put8(a, interval);
}

static GBytes *hub_config(void)
{
        GByteArray *a = g_byte_array_new();
        config_header(a, 1);
        a->data[7] = 0xE0;
        interface(a, 0, 0, 1, 9, 0, 0, 0);
        endpoint(a, 0x81, 3, 4, 12);
        return config_finish(a);
}

/* A plain DFU 1.1 bootloader (Smoothieware's, triffid/LPC17xx-DFU-
 * Bootloader dfu.c): one DFU-mode interface, one alt setting, the
 * functional descriptor with the model's bmAttributes, wDetachTimeOut
 * 500 ms, bcdDFUVersion 1.1. */
static GBytes *plain_dfu_config(VBoard *b)
{
        GByteArray *a = g_byte_array_new();

        config_header(a, 1);
        interface(a, 0, 0, 0, 0xFE, 1, 2, 4);
        put8(a, 9);
        put8(a, 0x21);
        put8(a, b->dfu->attributes);
        put16(a, 500);
        put16(a, b->transfer_size);
        put16(a, 0x0110);
        return config_finish(a);
}

static GBytes *dfu_config(VBoard *b)
{
        GByteArray *a = g_byte_array_new();

        if (b->plain_dfu)
                return (g_byte_array_unref(a), plain_dfu_config(b));
        config_header(a, 1);
        /* one DFU-mode interface (DFU 1.1 4.2.3: class FE, subclass 1,
         * protocol 2), one alt setting per memory, named by string 4+alt */
        interface(a, 0, 0, 0, 0xFE, 1, 2, 4);
        interface(a, 0, 1, 0, 0xFE, 1, 2, 5);
        /* DFU 1.1 4.2.4 functional descriptor, after the alt settings as
         * on the ROM: bitWillDetach | bitCanUpload | bitCanDnload, not
         * manifestation tolerant; wDetachTimeOut 255; DfuSe version 1.1a */
        put8(a, 9);
        put8(a, 0x21);
        put8(a, DFU_ATTR_WILL_DETACH | DFU_ATTR_CAN_UPLOAD | DFU_ATTR_CAN_DNLOAD);
        put16(a, 255);
        put16(a, b->transfer_size);
        put16(a, DFU_VERSION_DFUSE);
        return config_finish(a);
}

/* The RP2040 boot ROM in BOOTSEL mode (datasheet 2.8.4, 2.8.5): a USB
 * mass-storage interface (class 8, SCSI transparent, bulk-only) for UF2
 * drag and drop, and the vendor-specific PICOBOOT interface, each with one
 * bulk IN and one bulk OUT endpoint of 64 bytes (full speed). */
static GBytes *bootsel_config(void)
{
        GByteArray *a = g_byte_array_new();

        config_header(a, 2);
        a->data[7] = 0x80;
        a->data[8] = 250; /* 500 mA */
        interface(a, 0, 0, 2, 0x08, 0x06, 0x50, 0);
        endpoint(a, 0x81, 2, 64, 0);
        endpoint(a, 0x02, 2, 64, 0);
        interface(a, 1, 0, 2, 0xFF, 0x00, 0x00, 0);
        endpoint(a, 0x03, 2, 64, 0);
        endpoint(a, 0x84, 2, 64, 0);
        return config_finish(a);
}

#define PICOBOOT_EP_OUT 0x03
#define PICOBOOT_EP_IN  0x84

static GBytes *cdc_config(void)
{
        GByteArray *a = g_byte_array_new();

        /* Klipper's src/generic/usb_cdc.c layout: a CDC ACM communication
         * interface with an interrupt endpoint and a data interface with
         * two bulk endpoints. */
        config_header(a, 2);
        a->data[7] = 0x80;
        interface(a, 0, 0, 1, 2, 2, 1, 0);
        /* CDC 1.1 5.2.3: header, call management, ACM, union */
        put8(a, 5), put8(a, 0x24), put8(a, 0x00), put16(a, 0x0110);
        put8(a, 5), put8(a, 0x24), put8(a, 0x01), put8(a, 0x00), put8(a, 0x01);
        put8(a, 4), put8(a, 0x24), put8(a, 0x02), put8(a, 0x02);
        put8(a, 5), put8(a, 0x24), put8(a, 0x06), put8(a, 0x00), put8(a, 0x01);
        endpoint(a, 0x81, 3, 8, 255);
        interface(a, 1, 0, 2, 0x0A, 0, 0, 0);
        endpoint(a, 0x02, 2, 64, 0);
        endpoint(a, 0x83, 2, 64, 0);
        return config_finish(a);
}

/* USB 2.0 9.6.7: UTF-16LE string descriptor (string-descriptor.h). */
static GBytes *string_descriptor(const char *s, uint8_t claimed_len, const uint16_t *tail, size_t n_tail)
{
        size_t n = string_descriptor_size(s, n_tail);
        uint8_t *buf = g_malloc(n);

        string_descriptor_build(s, claimed_len, tail, n_tail, buf);
        return g_bytes_new_take(buf, n);
}

static GBytes *langid_descriptor(void)
{
        static const uint8_t d[] = { 4, 3, 0x09, 0x04 };
        return g_bytes_new_static(d, sizeof(d));
}

static char *hex(GBytes *bytes)
{
        gsize n;
        const uint8_t *p = g_bytes_get_data(bytes, &n);
        GString *s = g_string_new(NULL);
        for (gsize i = 0; i < n; i++)
                g_string_append_printf(s, "%02X", p[i]);
        return g_string_free(s, FALSE);
}

static GBytes *concat(GBytes *a, GBytes *b)
{
        GByteArray *r = g_byte_array_new();
        gsize na, nb;
        const uint8_t *pa = g_bytes_get_data(a, &na), *pb = g_bytes_get_data(b, &nb);
        g_byte_array_append(r, pa, na);
        g_byte_array_append(r, pb, nb);
        return g_byte_array_free_to_bytes(r);
}

/* udev's whitespace replacement for ID_MODEL / ID_SERIAL (runs of blanks
 * become one '_', leading and trailing ones are dropped). */
static char *udev_replace_whitespace(const char *s)
{
        GString *r = g_string_new(NULL);
        bool blank = false;
        for (const char *p = s; *p; p++) {
                if (*p == ' ') {
                        blank = true;
                        continue;
                }
                if (blank && r->len > 0)
                        g_string_append_c(r, '_');
                blank = false;
                g_string_append_c(r, *p);
        }
        return g_string_free(r, FALSE);
}

static bool add_from_string(World *w, const char *s)
{
        g_autoptr(GError) error = NULL;
        if (!umockdev_testbed_add_from_string(w->testbed, s, &error)) {
                g_printerr("vboard: umockdev: %s\n", error->message);
                return false;
        }
        return true;
}

int usb_topology_add(World *w)
{
        g_autoptr(GBytes) rh_dev = device_descriptor(9, 0x1d6b, 0x0002, 0x0601, false);
        g_autoptr(GBytes) hub_dev = device_descriptor(9, 0x05e3, 0x0610, 0x9226, false);
        g_autoptr(GBytes) cfg = hub_config();
        g_autoptr(GBytes) rh = concat(rh_dev, cfg);
        g_autoptr(GBytes) hub = concat(hub_dev, cfg);
        g_autofree char *rh_hex = hex(rh), *hub_hex = hex(hub);
        g_autofree char *s = NULL;

        w->devnum_used[1] = w->devnum_used[2] = true;
        w->next_devnum = 3;
        s = g_strdup_printf("P: /devices/pci0000:00/0000:00:14.0/usb1\n"
                            "E: SUBSYSTEM=usb\nE: DEVTYPE=usb_device\nE: DRIVER=usb\n"
                            "E: PRODUCT=1d6b/2/601\nE: BUSNUM=001\nE: DEVNUM=001\n"
                            "E: DEVNAME=/dev/bus/usb/001/001\n"
                            "A: busnum=1\\n\nA: devnum=1\\n\nA: devpath=0\\n\nA: speed=480\\n\n"
                            "A: idVendor=1d6b\\n\nA: idProduct=0002\\n\nA: bConfigurationValue=1\\n\n"
                            "A: maxchild=1\\n\n"
                            "H: descriptors=%s\n\n"
                            "P: /devices/pci0000:00/0000:00:14.0/usb1/1-1\n"
                            "E: SUBSYSTEM=usb\nE: DEVTYPE=usb_device\nE: DRIVER=usb\n"
                            "E: PRODUCT=5e3/610/9226\nE: BUSNUM=001\nE: DEVNUM=002\n"
                            "E: DEVNAME=/dev/bus/usb/001/002\n"
                            "A: busnum=1\\n\nA: devnum=2\\n\nA: devpath=1\\n\nA: speed=480\\n\n"
                            "A: idVendor=05e3\\n\nA: idProduct=0610\\n\nA: bConfigurationValue=1\\n\n"
                            "A: maxchild=%d\\n\n"
                            "H: descriptors=%s\n",
                            rh_hex, VBOARD_MAX_BOARDS, hub_hex);
        return add_from_string(w, s) ? 0 : -EIO;
}

/* ---- identities ----------------------------------------------------- */

void usb_device_identity(VBoard *b, BoardMode mode, UsbIdentity *ret)
{
        const BoardVariant *v = b->variant;

        switch (mode) {
        case BOARD_MODE_APP:
                if (b->bridge) {
                        /* Klipper's USB-to-CAN bridge mode (src/generic/usb_canbus.c):
                         * candleLight's gs_usb id, the same strings */
                        *ret = (UsbIdentity){ 0x1d50, 0x606f, 0x0100, "Klipper", v->mcu, b->uid };
                        return;
                }
                /* Klipper src/generic/usb_cdc.c: "Klipper", MCU name, chip UID */
                *ret = (UsbIdentity){ v->usb_app.vid ? v->usb_app.vid : 0x1d50,
                                      v->usb_app.vid ? v->usb_app.pid : 0x614e,
                                      0x0100,
                                      "Klipper",
                                      v->mcu,
                                      b->uid };
                return;
        case BOARD_MODE_KATAPULT:
                *ret = (UsbIdentity){ v->usb_katapult.vid ? v->usb_katapult.vid : 0x1d50,
                                      v->usb_katapult.vid ? v->usb_katapult.pid : 0x6177,
                                      0x0100,
                                      "katapult",
                                      v->mcu,
                                      b->uid };
                return;
        case BOARD_MODE_BOOTSEL: {
                /* RP2040 boot ROM: "Raspberry Pi" / "RP2 Boot", bcdDevice
                 * 1.00, a serial of 12 hex digits; vboard derives it from
                 * the UID */
                *ret = (UsbIdentity){ v->usb_bootsel.vid ? v->usb_bootsel.vid : 0x2e8a,
                                      v->usb_bootsel.vid ? v->usb_bootsel.pid : 0x0003,
                                      0x0100,
                                      "Raspberry Pi",
                                      "RP2 Boot",
                                      b->bootsel_serial };
                return;
        }
        case BOARD_MODE_DFU:
        case BOARD_MODE_OFF:
        case _BOARD_MODE_MAX:
        case _BOARD_MODE_INVALID:
                if (b->plain_dfu) {
                        /* Smoothieware's DFU bootloader: 1d50:6015, bcdDevice
                         * 1.00, "SmoothieWare" / "Smoothie" (its dfu.c); it
                         * has no serial string, vboard gives it the UID. */
                        bool smoothie = v->usb_dfu.vid == 0x1d50 && v->usb_dfu.pid == 0x6015;
                        *ret = (UsbIdentity){ v->usb_dfu.vid,
                                              v->usb_dfu.pid,
                                              0x0100,
                                              smoothie ? "SmoothieWare" : "vboard",
                                              smoothie ? "Smoothie" : "DFU 1.1 bootloader",
                                              b->uid };
                        return;
                }
                /* The STM32 system memory bootloader (AN2606): 0483:df11,
                 * bcdDevice 2.00 and these strings on every F4/G0/H7. */
                *ret = (UsbIdentity){ v->usb_dfu.vid ? v->usb_dfu.vid : 0x0483,
                                      v->usb_dfu.vid ? v->usb_dfu.pid : 0xdf11,
                                      0x2200,
                                      "STMicroelectronics",
                                      "STM32  BOOTLOADER",
                                      b->dfu_serial };
                return;
        }
}

/* ---- the usbdevfs handler (umockdev worker thread) ------------------ */

static void complete_urb(UMockdevIoctlData *urb_data, int status, int actual)
{
        struct usbdevfs_urb *urb = (struct usbdevfs_urb *)urb_data->data;
        urb->status = status;
        urb->actual_length = actual;
}

/* Standard and class control requests. Returns the data-stage length or
 * a negative errno (-EPIPE: stall). Lock held. */
static int control(UsbDevice *d, uint8_t type, uint8_t req, uint16_t value, uint16_t index, uint16_t length,
                   uint8_t *data)
{
        VBoard *b = d->board;
        GBytes *src = NULL;

        if ((type & 0x60) == 0x00) {
                switch (req) {
                case 0x06: /* GET_DESCRIPTOR */
                        switch (value >> 8) {
                        case 1:
                                src = d->device_descriptor;
                                break;
                        case 2:
                                src = d->config_descriptor;
                                break;
                        case 3:
                                /* a transfer error, as a board that is still
                                 * settling after enumeration gives now and then */
                                if (d->mode == BOARD_MODE_DFU && b->string_eio_left > 0) {
                                        b->string_eio_left--;
                                        vboard_event(b, "string-eio", "string %u", value & 0xFF);
                                        return -EIO;
                                }
                                if ((value & 0xFF) < G_N_ELEMENTS(d->strings))
                                        src = d->strings[value & 0xFF];
                                break;
                        }
                        if (!src)
                                return -EPIPE;
                        {
                                gsize n;
                                const uint8_t *p = g_bytes_get_data(src, &n);
                                n = MIN(n, length);
                                memcpy(data, p, n);
                                return (int)n;
                        }
                case 0x00: /* GET_STATUS */
                        if (length < 2)
                                return -EPIPE;
                        data[0] = data[1] = 0;
                        return 2;
                case 0x08: /* GET_CONFIGURATION */
                        if (length < 1)
                                return -EPIPE;
                        data[0] = 1;
                        return 1;
                case 0x09: /* SET_CONFIGURATION */
                case 0x0B: /* SET_INTERFACE */
                case 0x01: /* CLEAR_FEATURE */
                case 0x03: /* SET_FEATURE */
                        return 0;
                default:
                        return -EPIPE;
                }
        }

        if (d->mode == BOARD_MODE_BOOTSEL) {
                /* the PICOBOOT interface's vendor requests (wIndex 1); the
                 * mass-storage class requests are not modelled */
                if ((type & 0x60) == 0x40 && (type & 0x1F) == 1 && index == 1)
                        return picoboot_model_control(b->picoboot, type, req, length, data);
                return -EPIPE;
        }

        if ((type & 0x60) != 0x20 || (type & 0x1F) != 1)
                return -EPIPE;

        if (d->mode == BOARD_MODE_DFU) {
                uint64_t now = world_now_us(d->world);
                int r = dfu_model_request(b->dfu, now, type, req, value, length, data);
                uint64_t at;
                DfuAction a = dfu_model_pending_action(b->dfu, &at);

                if (a != DFU_ACTION_NONE) {
                        uint64_t delay = at > now ? at - now : 0;
                        if (a == DFU_ACTION_VANISH) {
                                d->gone = true;
                                vboard_event(b, "reset-on-leave", "vanished before answering GETSTATUS");
                        }
                        vboard_schedule(b, delay, a == DFU_ACTION_RESET ? BOARD_MODE_DFU : (BoardMode)-1,
                                        timing_reenumerate_us(&d->world->timing), dfu_action_to_string(a));
                        dfu_model_clear_action(b->dfu);
                }
                /* data blocks: wBlockNum >= 2 on DfuSe (UM0424), any
                 * non-empty block on plain DFU */
                if (b->quirks[QUIRK_UNPLUG] && r >= 0 && req == DFU_REQUEST_DNLOAD &&
                    (b->plain_dfu ? length > 0 : value >= 2) &&
                    b->dfu->dnloads - b->blocks_at_power_up >= b->unplug_after_blocks) {
                        /* cable pulled right after the Nth data block */
                        d->gone = true;
                        vboard_schedule(b, 0, b->unplug_replug_ms >= 0 ? (BoardMode)-1 : BOARD_MODE_OFF,
                                        b->unplug_replug_ms >= 0 ? (uint64_t)b->unplug_replug_ms * 1000 : 0,
                                        "unplug quirk");
                }
                return r;
        }

        /* CDC ACM class requests (CDC PSTN 6.3): a program may send these
         * through libusb; the firmware treats them like the tty ones. */
        switch (req) {
        case 0x20: /* SET_LINE_CODING */
                if (length < 7)
                        return -EPIPE;
                d->line_baud = data[0] | data[1] << 8 | data[2] << 16 | (uint32_t)data[3] << 24;
                tty_port_line_changed(b, d->line_baud, d->line_dtr);
                return 0;
        case 0x21: /* GET_LINE_CODING */
                if (length < 7)
                        return -EPIPE;
                memset(data, 0, 7);
                data[0] = d->line_baud & 0xFF;
                data[1] = (d->line_baud >> 8) & 0xFF;
                data[2] = (d->line_baud >> 16) & 0xFF;
                data[3] = d->line_baud >> 24;
                data[6] = 8;
                return 7;
        case 0x22: /* SET_CONTROL_LINE_STATE */
                d->line_dtr = value & 1;
                tty_port_line_changed(b, d->line_baud, d->line_dtr);
                return 0;
        default:
                return -EPIPE;
        }
}

/* A bulk transfer on the PICOBOOT endpoints (lock held): bytes moved or
 * -EPIPE; *ret_ready_us is when it completes (after the flash work it
 * waits for). Acts on a reboot and on the unplug quirk. */
static int bulk(UsbDevice *d, uint8_t ep, uint8_t *data, size_t len, uint64_t *ret_ready_us)
{
        VBoard *b = d->board;
        PicobootModel *m = b->picoboot;
        uint64_t now = world_now_us(d->world);
        PicobootPhase before = m->phase;
        uint32_t delay_ms;
        int r;

        if (ep == PICOBOOT_EP_OUT)
                r = picoboot_model_out(m, now, data, len);
        else
                r = picoboot_model_in(m, now, data, len);
        *ret_ready_us = MAX(now + timing_bulk_us(&d->world->timing, (uint32_t)MAX(r, 0)),
                            ep == PICOBOOT_EP_IN ? picoboot_model_busy_until(m) : 0);
        if (d->world->verbose)
                g_printerr("vboard: %s bulk %02x %zu -> %d (%s -> %s)\n", b->name, ep, len, r,
                           picoboot_phase_to_string(before), picoboot_phase_to_string(m->phase));
        if (r >= 0 && picoboot_model_take_reboot(m, &delay_ms))
                vboard_schedule(b, *ret_ready_us - now + (uint64_t)delay_ms * 1000, (BoardMode)-1,
                                timing_reenumerate_us(&d->world->timing), "picoboot reboot");
        /* cable pulled right after the N-th WRITE's data */
        if (b->quirks[QUIRK_UNPLUG] && r > 0 && before == PICOBOOT_PHASE_DATA_OUT &&
            m->phase == PICOBOOT_PHASE_ACK_IN && m->writes >= b->unplug_after_blocks) {
                d->gone = true;
                vboard_schedule(b, 0, b->unplug_replug_ms >= 0 ? (BoardMode)-1 : BOARD_MODE_OFF,
                                b->unplug_replug_ms >= 0 ? (uint64_t)b->unplug_replug_ms * 1000 : 0,
                                "unplug quirk");
        }
        return r;
}

static void submit(UsbDevice *d, UMockdevIoctlClient *client, UMockdevIoctlData *arg)
{
        g_autoptr(GError) error = NULL;
        UMockdevIoctlData *urb_data;
        g_autoptr(UMockdevIoctlData) buf = NULL;
        struct usbdevfs_urb *urb;
        PendingUrb *p;
        int r = -EPIPE;
        uint64_t ready_us = 0;

        urb_data = umockdev_ioctl_data_resolve(arg, 0, sizeof(struct usbdevfs_urb), &error);
        if (!urb_data) {
                umockdev_ioctl_client_complete(client, -1, EFAULT);
                return;
        }
        urb = (struct usbdevfs_urb *)urb_data->data;
        if (urb->type == USBDEVFS_URB_TYPE_BULK && d->mode == BOARD_MODE_BOOTSEL &&
            (urb->endpoint == PICOBOOT_EP_OUT || urb->endpoint == PICOBOOT_EP_IN) &&
            urb->buffer_length >= 0) {
                if (urb->buffer_length > 0) {
                        buf = umockdev_ioctl_data_resolve(urb_data, offsetof(struct usbdevfs_urb, buffer),
                                                          (gsize)urb->buffer_length, &error);
                        if (!buf) {
                                g_object_unref(urb_data);
                                umockdev_ioctl_client_complete(client, -1, EFAULT);
                                return;
                        }
                }
                r = bulk(d, urb->endpoint, buf ? buf->data : NULL, (size_t)urb->buffer_length, &ready_us);
                complete_urb(urb_data, r < 0 ? -EPIPE : 0, MAX(r, 0));
        } else if (urb->type != USBDEVFS_URB_TYPE_CONTROL || urb->buffer_length < 8) {
                /* no bulk/interrupt traffic is modelled: fail like a stall */
                complete_urb(urb_data, -EPIPE, 0);
        } else {
                buf = umockdev_ioctl_data_resolve(urb_data, offsetof(struct usbdevfs_urb, buffer),
                                                  (gsize)urb->buffer_length, &error);
                if (!buf) {
                        g_object_unref(urb_data);
                        umockdev_ioctl_client_complete(client, -1, EFAULT);
                        return;
                }
                {
                        uint8_t *s = buf->data;
                        uint16_t value = s[2] | s[3] << 8, index = s[4] | s[5] << 8,
                                 length = s[6] | s[7] << 8;
                        if ((size_t)length + 8 > (size_t)urb->buffer_length)
                                length = (uint16_t)(urb->buffer_length - 8);
                        r = control(d, s[0], s[1], value, index, length, s + 8);
                        /* an OUT data stage is consumed whole */
                        if (r >= 0 && !(s[0] & 0x80))
                                r = length;
                        if (d->world->verbose)
                                g_printerr("vboard: %s %02x %02x %04x %04x %u -> %d\n", d->board->name, s[0],
                                           s[1], value, index, length, r);
                }
                if (r == -ENODEV)
                        complete_urb(urb_data, -ESHUTDOWN, 0);
                else if (r == -EIO)
                        complete_urb(urb_data, -EIO, 0);
                else if (r < 0)
                        complete_urb(urb_data, -EPIPE, 0);
                else
                        complete_urb(urb_data, 0, r);
        }
        p = g_new0(PendingUrb, 1);
        p->client = g_object_ref(client);
        p->urb_data = urb_data;
        p->user_addr = urb_data->client_addr;
        p->ready_us = MAX(ready_us, world_now_us(d->world) + timing_control_transfer_us(&d->world->timing));
        g_queue_push_tail(&d->urbs, p);
        umockdev_ioctl_client_complete(client, 0, 0);
}

static void pending_urb_free(PendingUrb *p)
{
        g_object_unref(p->client);
        g_object_unref(p->urb_data);
        g_free(p);
}

static void reap(UsbDevice *d, UMockdevIoctlClient *client, UMockdevIoctlData *arg)
{
        uint64_t now = world_now_us(d->world);

        for (GList *l = d->urbs.head; l; l = l->next) {
                PendingUrb *p = l->data;
                if (p->client != client)
                        continue;
                if (p->ready_us > now)
                        break; /* in order, like the kernel's completion list */
                {
                        g_autoptr(UMockdevIoctlData) slot =
                                umockdev_ioctl_data_resolve(arg, 0, sizeof(void *), NULL);
                        if (!slot) {
                                umockdev_ioctl_client_complete(client, -1, EFAULT);
                                return;
                        }
                        g_queue_delete_link(&d->urbs, l);
                        umockdev_ioctl_data_set_ptr(slot, 0, p->urb_data);
                }
                pending_urb_free(p);
                umockdev_ioctl_client_complete(client, 0, 0);
                return;
        }
        umockdev_ioctl_client_complete(client, -1, d->gone ? ENODEV : EAGAIN);
}

static void discard(UsbDevice *d, UMockdevIoctlClient *client, UMockdevIoctlData *arg)
{
        unsigned long addr = 0;

        memcpy(&addr, arg->data, MIN(sizeof(addr), (size_t)arg->data_len));
        for (GList *l = d->urbs.head; l; l = l->next) {
                PendingUrb *p = l->data;
                if (p->client == client && p->user_addr == addr) {
                        /* completed at submit already: like the kernel when
                         * the URB finished before the discard */
                        umockdev_ioctl_client_complete(client, -1, EINVAL);
                        return;
                }
        }
        umockdev_ioctl_client_complete(client, -1, EINVAL);
}

static gboolean on_usb_ioctl(UMockdevIoctlBase *base, UMockdevIoctlClient *client, gpointer userdata)
{
        UsbDevice *d = userdata;
        World *w = d->world;
        unsigned long request = umockdev_ioctl_client_get_request(client);
        UMockdevIoctlData *arg = umockdev_ioctl_client_get_arg(client);
        g_autoptr(GError) error = NULL;

        g_mutex_lock(&w->lock);
        if (d->gone && request != USBDEVFS_REAPURB && request != USBDEVFS_REAPURBNDELAY &&
            request != USBDEVFS_DISCARDURB) {
                umockdev_ioctl_client_complete(client, -1, ENODEV);
                goto out;
        }

        switch (request) {
        case USBDEVFS_GET_CAPABILITIES: {
                g_autoptr(UMockdevIoctlData) v =
                        umockdev_ioctl_data_resolve(arg, 0, sizeof(uint32_t), &error);
                if (!v) {
                        umockdev_ioctl_client_complete(client, -1, EFAULT);
                        break;
                }
                *(uint32_t *)v->data = USBDEVFS_CAP_ZERO_PACKET | USBDEVFS_CAP_NO_PACKET_SIZE_LIM;
                umockdev_ioctl_client_complete(client, 0, 0);
                break;
        }
        case USBDEVFS_CLAIMINTERFACE:
        case USBDEVFS_RELEASEINTERFACE:
        case USBDEVFS_CLEAR_HALT:
                umockdev_ioctl_client_complete(client, 0, 0);
                break;
        case USBDEVFS_SETINTERFACE: {
                g_autoptr(UMockdevIoctlData) v =
                        umockdev_ioctl_data_resolve(arg, 0, sizeof(struct usbdevfs_setinterface), &error);
                struct usbdevfs_setinterface *si;
                if (!v) {
                        umockdev_ioctl_client_complete(client, -1, EFAULT);
                        break;
                }
                si = (struct usbdevfs_setinterface *)v->data;
                if (d->mode == BOARD_MODE_DFU) {
                        if (si->interface != 0 || dfu_model_set_alt(d->board->dfu, si->altsetting) < 0) {
                                umockdev_ioctl_client_complete(client, -1, EINVAL);
                                break;
                        }
                } else if (si->interface > 1 || si->altsetting != 0) {
                        umockdev_ioctl_client_complete(client, -1, EINVAL);
                        break;
                }
                umockdev_ioctl_client_complete(client, 0, 0);
                break;
        }
        case USBDEVFS_GETDRIVER:
        case USBDEVFS_IOCTL:
                /* no kernel driver bound (the tty's cdc_acm is outside usbfs) */
                umockdev_ioctl_client_complete(client, -1, ENODATA);
                break;
        case USBDEVFS_RESET:
                if (d->mode == BOARD_MODE_DFU) {
                        uint64_t now = world_now_us(w);
                        dfu_model_bus_reset(d->board->dfu, now);
                        if (dfu_model_pending_action(d->board->dfu, NULL) == DFU_ACTION_LEAVE) {
                                dfu_model_clear_action(d->board->dfu);
                                vboard_schedule(d->board, 0, (BoardMode)-1,
                                                timing_reenumerate_us(&w->timing), "usb reset after leave");
                                /* The device resets into something else: Linux
                                 * sees the descriptors change during the port
                                 * reset, disconnects it and fails the ioctl with
                                 * ENODEV (drivers/usb/core/hub.c
                                 * usb_reset_and_verify_device); libusb reports
                                 * LIBUSB_ERROR_NOT_FOUND. */
                                d->gone = true;
                                umockdev_ioctl_client_complete(client, -1, ENODEV);
                                break;
                        }
                }
                umockdev_ioctl_client_complete(client, 0, 0);
                break;
        case USBDEVFS_SUBMITURB:
                submit(d, client, arg);
                break;
        case USBDEVFS_REAPURB:
        case USBDEVFS_REAPURBNDELAY:
                reap(d, client, arg);
                break;
        case USBDEVFS_DISCARDURB:
                discard(d, client, arg);
                break;
        default:
                if (w->verbose)
                        g_printerr("vboard: %s: unhandled usbdevfs ioctl 0x%lx\n", d->board->name, request);
                umockdev_ioctl_client_complete(client, -1, ENOTTY);
                break;
        }
out:
        g_mutex_unlock(&w->lock);
        return TRUE;
}

/* ---- adding and removing ------------------------------------------- */

static unsigned alloc_devnum(World *w)
{
        /* Linux hands out device numbers round-robin (drivers/usb/core/hub.c
         * choose_devnum), so every appearance gets a new one. */
        for (unsigned i = 0; i < 125; i++) {
                unsigned n = w->next_devnum;
                w->next_devnum = n >= 127 ? 3 : n + 1;
                if (!w->devnum_used[n]) {
                        w->devnum_used[n] = true;
                        return n;
                }
        }
        return 0;
}

int usb_device_add(World *w, VBoard *b, BoardMode mode, const UsbIdentity *id, UsbDevice **ret)
{
        g_autoptr(GError) error = NULL;
        g_autofree char *desc_hex = NULL, *model = NULL, *vendor = NULL, *s = NULL, *ifaces = NULL;
        g_autofree char *path_tag = NULL, *port_dots = NULL;
        g_autoptr(GBytes) all = NULL;
        UsbDevice *d;
        char *dot;

        d = g_new0(UsbDevice, 1);
        d->world = w;
        d->board = b;
        d->mode = mode;
        g_queue_init(&d->urbs);
        g_mutex_lock(&w->lock);
        d->devnum = alloc_devnum(w);
        g_mutex_unlock(&w->lock);
        if (d->devnum == 0) {
                g_free(d);
                return -EBUSY;
        }
        d->devnode = g_strdup_printf("/dev/bus/usb/001/%03u", d->devnum);
        if (w->usb_by_devnum[d->devnum]) {
                /* The node is handed out again: its socket goes to the new
                 * handler. A program may still hold the old node open with a
                 * connection to the old handler, which keeps calling
                 * on_usb_ioctl() with the old device: retire it, do not free
                 * it before the world ends. */
                UsbDevice *old = w->usb_by_devnum[d->devnum];
                umockdev_testbed_detach_ioctl(w->testbed, old->devnode, NULL);
                w->usb_by_devnum[d->devnum] = NULL;
                g_mutex_lock(&w->lock);
                w->retired_usb = g_slist_prepend(w->retired_usb, old);
                g_mutex_unlock(&w->lock);
        }
        d->syspath = g_strdup_printf("%s/%s", SYS_HUB, b->port);
        d->line_baud = 250000;
        d->line_dtr = false;

        d->device_descriptor =
                device_descriptor(mode == BOARD_MODE_DFU || mode == BOARD_MODE_BOOTSEL ? 0 : 2, id->vid,
                                  id->pid, id->bcd_device, true);
        d->strings[0] = langid_descriptor();
        d->strings[1] = string_descriptor(id->manufacturer, 0, NULL, 0);
        d->strings[2] = string_descriptor(id->product, 0, NULL, 0);
        d->strings[3] = string_descriptor(id->serial, 0, NULL, 0);
        if (mode == BOARD_MODE_DFU) {
                const char *layout = b->variant->layout;
                bool tail = b->quirks[QUIRK_GARBAGE_TAIL];
                uint8_t claimed = b->quirks[QUIRK_SHORT_STRING] ? STRING_DESCRIPTOR_SHORT_STRING_CLAIM : 0;
                d->config_descriptor = dfu_config(b);
                if (b->plain_dfu)
                        /* the interface string of Smoothieware's bootloader;
                         * plain DFU has no layout */
                        d->strings[4] = string_descriptor("Smoothie DFU", 0, NULL, 0);
                else
                        d->strings[4] = string_descriptor(
                                layout, claimed, tail ? string_descriptor_garbage_tail : NULL,
                                tail ? G_N_ELEMENTS(string_descriptor_garbage_tail) : 0);
                d->strings[5] = string_descriptor(b->option_bytes_layout, 0, NULL, 0);
                ifaces = g_strdup(":fe0102:");
        } else if (mode == BOARD_MODE_BOOTSEL) {
                d->config_descriptor = bootsel_config();
                ifaces = g_strdup(":080650:ff0000:");
        } else if (b->bridge && mode == BOARD_MODE_APP) {
                /* gs_usb: one vendor-specific interface (the descriptors
                 * stay the CDC ones: nothing reads them) */
                d->config_descriptor = cdc_config();
                ifaces = g_strdup(":ff0000:");
        } else {
                d->config_descriptor = cdc_config();
                ifaces = g_strdup(":020201:0a0000:");
        }
        all = concat(d->device_descriptor, d->config_descriptor);
        desc_hex = hex(all);
        vendor = udev_replace_whitespace(id->manufacturer);
        model = udev_replace_whitespace(id->product);
        port_dots = g_strdup(b->port + 2); /* "1.3" */
        path_tag = g_strdup(port_dots);
        for (dot = path_tag; *dot; dot++)
                if (*dot == '.')
                        *dot = '_';

        s = g_strdup_printf(
                "P: %s\nN: bus/usb/001/%03u\n"
                "E: SUBSYSTEM=usb\nE: DEVTYPE=usb_device\nE: DRIVER=usb\n"
                "E: DEVNAME=%s\nE: BUSNUM=001\nE: DEVNUM=%03u\n"
                "E: PRODUCT=%x/%x/%x\nE: TYPE=%u/0/0\n"
                "E: ID_VENDOR=%s\nE: ID_VENDOR_ENC=%s\nE: ID_VENDOR_ID=%04x\n"
                "E: ID_MODEL=%s\nE: ID_MODEL_ENC=%s\nE: ID_MODEL_ID=%04x\nE: ID_REVISION=%04x\n"
                "E: ID_SERIAL=%s_%s_%s\nE: ID_SERIAL_SHORT=%s\nE: ID_BUS=usb\n"
                "E: ID_USB_INTERFACES=%s\n"
                "E: ID_PATH=pci-0000:00:14.0-usb-0:%s\nE: ID_PATH_TAG=pci-0000_00_14_0-usb-0_%s\n"
                "A: busnum=1\\n\nA: devnum=%u\\n\nA: devpath=%s\\n\nA: speed=12\\n\n"
                "A: idVendor=%04x\\n\nA: idProduct=%04x\\n\nA: bcdDevice=%04x\\n\n"
                "A: bConfigurationValue=1\\n\nA: bNumConfigurations=1\\n\n"
                "A: manufacturer=%s\\n\nA: product=%s\\n\nA: serial=%s\\n\n"
                "H: descriptors=%s\n",
                d->syspath + strlen("/sys"), d->devnum, d->devnode, d->devnum, id->vid, id->pid,
                id->bcd_device, mode == BOARD_MODE_DFU || mode == BOARD_MODE_BOOTSEL ? 0 : 2, vendor,
                id->manufacturer, id->vid, model, id->product, id->pid, id->bcd_device, vendor, model,
                id->serial, id->serial, ifaces, port_dots, path_tag, d->devnum, port_dots, id->vid, id->pid,
                id->bcd_device, id->manufacturer, id->product, id->serial, desc_hex);
        /* The handler is listening before the node exists: under the
         * preload, add_from_string() sends "add" at once, and a program that
         * opens the node on that uevent (flashd probes DFU devices right
         * away) connects to $UMOCKDEV_DIR/ioctl/<node> at open(). Before
         * attach_ioctl() that socket does not exist and the fd silently gets
         * the testbed's _default handler (every usbdevfs ioctl fails with
         * ENOTTY); between attach_ioctl()'s bind() and listen() the connect
         * is refused and libumockdev-preload exit(1)s the program ("Failed
         * to connect to ioctl socket"). */
        d->handler = umockdev_ioctl_base_new();
        g_signal_connect(d->handler, "handle-ioctl", G_CALLBACK(on_usb_ioctl), d);
        if (!umockdev_testbed_attach_ioctl(w->testbed, d->devnode, d->handler, &error)) {
                g_printerr("vboard: cannot attach ioctl handler to %s: %s\n", d->devnode, error->message);
                usb_device_free(d);
                return -EIO;
        }
        if (!add_from_string(w, s)) {
                umockdev_testbed_detach_ioctl(w->testbed, d->devnode, NULL);
                usb_device_free(d);
                return -EIO;
        }

        /* the interface(s), as the kernel creates them */
        if (mode == BOARD_MODE_DFU)
                s = (g_free(s), g_strdup_printf("P: %s/%s:1.0\nE: SUBSYSTEM=usb\nE: DEVTYPE=usb_interface\n"
                                                "E: INTERFACE=254/1/2\n"
                                                "A: bInterfaceNumber=00\\n\nA: bInterfaceClass=fe\\n\n"
                                                "A: bInterfaceSubClass=01\\n\nA: bInterfaceProtocol=02\\n\n"
                                                "A: bAlternateSetting= 0\\n\nA: bNumEndpoints=00\\n\n",
                                                d->syspath + strlen("/sys"), b->port));
        else if (mode == BOARD_MODE_BOOTSEL)
                s = (g_free(s), g_strdup_printf("P: %s/%s:1.0\nE: SUBSYSTEM=usb\nE: DEVTYPE=usb_interface\n"
                                                "E: DRIVER=usb-storage\nE: INTERFACE=8/6/80\n"
                                                "A: bInterfaceNumber=00\\n\nA: bInterfaceClass=08\\n\n"
                                                "A: bInterfaceSubClass=06\\n\nA: bInterfaceProtocol=50\\n\n"
                                                "A: bAlternateSetting= 0\\n\nA: bNumEndpoints=02\\n\n",
                                                d->syspath + strlen("/sys"), b->port));
        else
                s = (g_free(s), g_strdup_printf("P: %s/%s:1.0\nE: SUBSYSTEM=usb\nE: DEVTYPE=usb_interface\n"
                                                "E: DRIVER=cdc_acm\nE: INTERFACE=2/2/1\n"
                                                "A: bInterfaceNumber=00\\n\nA: bInterfaceClass=02\\n\n"
                                                "A: bInterfaceSubClass=02\\n\nA: bInterfaceProtocol=01\\n\n"
                                                "A: bAlternateSetting= 0\\n\nA: bNumEndpoints=01\\n\n",
                                                d->syspath + strlen("/sys"), b->port));
        add_from_string(w, s);
        d->iface_syspath = g_strdup_printf("%s/%s:1.0", d->syspath, b->port);
        if (mode == BOARD_MODE_BOOTSEL) {
                s = (g_free(s), g_strdup_printf("P: %s/%s:1.1\nE: SUBSYSTEM=usb\nE: DEVTYPE=usb_interface\n"
                                                "E: INTERFACE=255/0/0\n"
                                                "A: bInterfaceNumber=01\\n\nA: bInterfaceClass=ff\\n\n"
                                                "A: bInterfaceSubClass=00\\n\nA: bInterfaceProtocol=00\\n\n"
                                                "A: bAlternateSetting= 0\\n\nA: bNumEndpoints=02\\n\n",
                                                d->syspath + strlen("/sys"), b->port));
                add_from_string(w, s);
                d->iface2_syspath = g_strdup_printf("%s/%s:1.1", d->syspath, b->port);
        }
        w->usb_by_devnum[d->devnum] = d;
        *ret = d;
        return 0;
}

void usb_device_remove(World *w, UsbDevice *d)
{
        /* children first, "remove" before removing (emulation.md) */
        if (d->iface2_syspath) {
                umockdev_testbed_uevent(w->testbed, d->iface2_syspath, "remove");
                umockdev_testbed_remove_device(w->testbed, d->iface2_syspath);
        }
        umockdev_testbed_uevent(w->testbed, d->iface_syspath, "remove");
        umockdev_testbed_remove_device(w->testbed, d->iface_syspath);
        umockdev_testbed_uevent(w->testbed, d->syspath, "remove");
        umockdev_testbed_remove_device(w->testbed, d->syspath);
        g_mutex_lock(&w->lock);
        d->gone = true;
        w->devnum_used[d->devnum] = false;
        g_mutex_unlock(&w->lock);
}

UsbDevice *usb_device_free(UsbDevice *d)
{
        PendingUrb *p;

        if (!d)
                return NULL;
        while ((p = g_queue_pop_head(&d->urbs)))
                pending_urb_free(p);
        if (d->handler)
                g_object_unref(d->handler);
        g_bytes_unref(d->device_descriptor);
        g_bytes_unref(d->config_descriptor);
        for (size_t i = 0; i < G_N_ELEMENTS(d->strings); i++)
                if (d->strings[i])
                        g_bytes_unref(d->strings[i]);
        g_free(d->devnode);
        g_free(d->syspath);
        g_free(d->iface_syspath);
        g_free(d->iface2_syspath);
        g_free(d);
        return NULL;
}
