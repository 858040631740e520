/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * udev glue: enumeration at start and a monitor on subsystems usb
 * (usb_device only) and tty, translated into InventoryUsbInfo /
 * InventoryTtyInfo for the bookkeeping in inventory.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "inventory/inventory-internal.h"
#include "util/log.h"
#include "util/macros.h"

struct InventoryUdev {
        Inventory *inv;
        struct udev *udev;
        struct udev_monitor *monitor;
        sd_event_source *source;
};

DEFINE_TRIVIAL_CLEANUP_FUNC(struct udev_enumerate *, udev_enumerate_unref);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct udev_device *, udev_device_unref);

static unsigned parse_uint(const char *s, int base)
{
        if (!s)
                return 0;
        char *end;
        unsigned long v = strtoul(s, &end, base);
        return end == s || v > 0xffffffffu ? 0 : (unsigned)v;
}

/*
 * Walk the binary `descriptors` attribute (device descriptor followed by
 * the configuration descriptors, as the kernel read them at enumeration,
 * USB 2.0 §9.6) looking for an interface of class 0xFE subclass 0x01 in
 * DFU mode, protocol 0x02 (DFU 1.1 §4.2.3; protocol 0x01 is the run-time
 * interface an application may carry, which is no bootloader). Reading
 * sysfs does not touch the device.
 */
static bool usb_has_dfu_interface(struct udev_device *d)
{
        const char *syspath = udev_device_get_syspath(d);
        _cleanup_free_ char *path = NULL;
        uint8_t buf[4096];

        if (asprintf(&path, "%s/descriptors", syspath) < 0)
                return false;
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return false;
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n <= 0)
                return false;
        for (size_t i = 0; i + 1 < (size_t)n;) {
                uint8_t len = buf[i], type = buf[i + 1];
                if (len < 2)
                        break;
                if (type == 0x04 && len >= 9 && i + 9 <= (size_t)n && buf[i + 5] == 0xfe &&
                    buf[i + 6] == 0x01 && buf[i + 7] == 0x02)
                        return true;
                i += len;
        }
        return false;
}

/* The /dev/serial/by-id link: from udev's link list, or from the DEVLINKS
 * property (space-separated) where the database has no link list (umockdev
 * testbeds describe devices by properties only). Returns a malloc'd path. */
static char *by_id_link(struct udev_device *d)
{
        static const char prefix[] = "/dev/serial/by-id/";
        struct udev_list_entry *l;

        udev_list_entry_foreach (l, udev_device_get_devlinks_list_entry(d)) {
                const char *name = udev_list_entry_get_name(l);
                if (strncmp(name, prefix, strlen(prefix)) == 0)
                        return strdup(name);
        }
        const char *links = udev_device_get_property_value(d, "DEVLINKS");
        for (const char *p = links; p && *p;) {
                size_t n = strcspn(p, " ");
                if (n > strlen(prefix) && strncmp(p, prefix, strlen(prefix)) == 0)
                        return strndup(p, n);
                p += n;
                p += strspn(p, " ");
        }
        return NULL;
}

static int handle_usb_device(Inventory *inv, struct udev_device *d, const char *action)
{
        const char *syspath = udev_device_get_syspath(d);

        if (streq(action, "remove"))
                return inventory_remove_usb(inv, syspath);
        if (!streq(action, "add") && !streq(action, "change") && !streq(action, "bind") &&
            !streq(action, "online"))
                return 0;

        const char *port = udev_device_get_sysname(d);
        /* Root hubs ("usb1") have no port; hubs are infrastructure. */
        if (!port || strncmp(port, "usb", 3) == 0)
                return 0;
        const char *cls = udev_device_get_sysattr_value(d, "bDeviceClass");
        if (cls && parse_uint(cls, 16) == 0x09)
                return 0;

        const char *busnum = udev_device_get_sysattr_value(d, "busnum");
        const char *devnum = udev_device_get_sysattr_value(d, "devnum");
        InventoryUsbInfo info = {
                .syspath = syspath,
                .port = port,
                .devnode = udev_device_get_devnode(d),
                .busnum = parse_uint(busnum ? busnum : udev_device_get_property_value(d, "BUSNUM"), 10),
                .devnum = parse_uint(devnum ? devnum : udev_device_get_property_value(d, "DEVNUM"), 10),
                .vid = (uint16_t)parse_uint(udev_device_get_sysattr_value(d, "idVendor"), 16),
                .pid = (uint16_t)parse_uint(udev_device_get_sysattr_value(d, "idProduct"), 16),
                .manufacturer = udev_device_get_sysattr_value(d, "manufacturer"),
                .product = udev_device_get_sysattr_value(d, "product"),
                .serial = udev_device_get_sysattr_value(d, "serial"),
                .has_dfu_interface = usb_has_dfu_interface(d),
        };
        if (info.vid == 0 && info.pid == 0) {
                info.vid = (uint16_t)parse_uint(udev_device_get_property_value(d, "ID_VENDOR_ID"), 16);
                info.pid = (uint16_t)parse_uint(udev_device_get_property_value(d, "ID_MODEL_ID"), 16);
        }
        return inventory_apply_usb(inv, &info);
}

static int handle_tty(Inventory *inv, struct udev_device *d, const char *action)
{
        const char *syspath = udev_device_get_syspath(d);

        if (streq(action, "remove"))
                return inventory_remove_tty(inv, syspath);
        if (!streq(action, "add") && !streq(action, "change"))
                return 0;

        struct udev_device *usb = udev_device_get_parent_with_subsystem_devtype(d, "usb", "usb_device");
        if (!usb || !udev_device_get_devnode(d))
                return 0; /* not a USB serial port */
        _cleanup_free_ char *by_id = by_id_link(d);
        InventoryTtyInfo info = {
                .syspath = syspath,
                .devnode = udev_device_get_devnode(d),
                .by_id = by_id,
                .usb_port = udev_device_get_sysname(usb),
        };
        return inventory_apply_tty(inv, &info);
}

/* A SocketCAN interface (type 280 = ARPHRD_CAN) on a USB device: which
 * port provides it. */
static int handle_net(Inventory *inv, struct udev_device *d, const char *action)
{
        const char *syspath = udev_device_get_syspath(d);

        if (streq(action, "remove"))
                return inventory_remove_can(inv, syspath);
        if (!streq(action, "add") && !streq(action, "change") && !streq(action, "move"))
                return 0;
        if (!streq_ptr(udev_device_get_sysattr_value(d, "type"), "280"))
                return 0;
        struct udev_device *usb = udev_device_get_parent_with_subsystem_devtype(d, "usb", "usb_device");
        if (!usb)
                return 0;
        InventoryCanInfo info = {
                .syspath = syspath,
                .name = udev_device_get_sysname(d),
                .usb_port = udev_device_get_sysname(usb),
        };
        return inventory_apply_can(inv, &info);
}

static int handle_device(Inventory *inv, struct udev_device *d, const char *action)
{
        const char *subsystem = udev_device_get_subsystem(d);
        int r = 0;

        if (!subsystem || !action)
                return 0;
        if (streq(subsystem, "usb") && streq_ptr(udev_device_get_devtype(d), "usb_device"))
                r = handle_usb_device(inv, d, action);
        else if (streq(subsystem, "tty"))
                r = handle_tty(inv, d, action);
        else if (streq(subsystem, "net"))
                r = handle_net(inv, d, action);
        if (r < 0)
                log_warning_errno(r, "udev %s %s: %m", action, udev_device_get_syspath(d));
        return r;
}

static int on_monitor(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        InventoryUdev *u = userdata;

        /* Drain what is queued; the fd is non-blocking. */
        for (int i = 0; i < 64; i++) {
                _cleanup_(udev_device_unrefp) struct udev_device *d =
                        udev_monitor_receive_device(u->monitor);
                if (!d)
                        break;
                handle_device(u->inv, d, udev_device_get_action(d));
        }
        return 0;
}

static int enumerate(InventoryUdev *u, const char *subsystem)
{
        _cleanup_(udev_enumerate_unrefp) struct udev_enumerate *e = udev_enumerate_new(u->udev);
        struct udev_list_entry *l;

        if (!e)
                return -ENOMEM;
        /* DEVTYPE is checked per device in handle_device(). */
        udev_enumerate_add_match_subsystem(e, subsystem);
        int r = udev_enumerate_scan_devices(e);
        if (r < 0)
                return r;
        udev_list_entry_foreach (l, udev_enumerate_get_list_entry(e)) {
                _cleanup_(udev_device_unrefp) struct udev_device *d =
                        udev_device_new_from_syspath(u->udev, udev_list_entry_get_name(l));
                if (d)
                        handle_device(u->inv, d, "add");
        }
        return 0;
}

InventoryUdev *inventory_udev_free(InventoryUdev *u)
{
        if (!u)
                return NULL;
        sd_event_source_disable_unref(u->source);
        udev_monitor_unref(u->monitor);
        udev_unref(u->udev);
        free(u);
        return NULL;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(InventoryUdev *, inventory_udev_free);

int inventory_udev_start(InventoryUdev **ret, Inventory *inv, sd_event *event)
{
        _cleanup_(inventory_udev_freep) InventoryUdev *u = calloc(1, sizeof(*u));
        int r;

        if (!u)
                return -ENOMEM;
        u->inv = inv;
        u->udev = udev_new();
        if (!u->udev)
                return log_error_errno(-ENOMEM, "udev_new() failed");

        /* Monitor first, then enumerate, so nothing falls between the two. */
        u->monitor = udev_monitor_new_from_netlink(u->udev, "udev");
        if (!u->monitor)
                return log_error_errno(-EIO, "cannot create the udev monitor");
        r = udev_monitor_filter_add_match_subsystem_devtype(u->monitor, "usb", "usb_device");
        if (r >= 0)
                r = udev_monitor_filter_add_match_subsystem_devtype(u->monitor, "tty", NULL);
        if (r >= 0)
                r = udev_monitor_filter_add_match_subsystem_devtype(u->monitor, "net", NULL);
        if (r >= 0)
                r = udev_monitor_enable_receiving(u->monitor);
        if (r < 0)
                return log_error_errno(r, "cannot start the udev monitor: %m");
        r = sd_event_add_io(event, &u->source, udev_monitor_get_fd(u->monitor), EPOLLIN, on_monitor, u);
        if (r < 0)
                return log_error_errno(r, "cannot watch the udev monitor: %m");

        /* USB devices before ttys, so a tty finds its board's entry. */
        r = enumerate(u, "usb");
        if (r >= 0)
                r = enumerate(u, "tty");
        if (r >= 0)
                r = enumerate(u, "net");
        if (r < 0)
                log_warning_errno(r, "udev enumeration failed: %m");

        *ret = TAKE_PTR(u);
        return 0;
}
