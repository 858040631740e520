/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * One appearance of a board on the emulated bus: the sysfs device with its
 * udev properties and `descriptors`, the /dev/bus/usb node and a usbdevfs
 * ioctl handler that runs control transfers against the board's models.
 * A device taken off the bus keeps its handler (open handles get ENODEV)
 * until the world ends; the next appearance gets a new devnum and node.
 */

#include "vboard.h"

struct UsbDevice {
        World *world;
        VBoard *board;
        BoardMode mode;
        unsigned devnum;
        char *devnode; /* /dev/bus/usb/001/005 */
        char *syspath; /* /sys/devices/.../1-1.3 (testbed path) */
        char *iface_syspath;
        char *iface2_syspath; /* BOOTSEL: the PICOBOOT interface */
        GBytes *device_descriptor;
        GBytes *config_descriptor;
        GBytes *strings[8];
        bool gone;
        GQueue urbs; /* PendingUrb */
        UMockdevIoctlBase *handler;
        /* CDC line state seen over usbdevfs (app mode) */
        uint32_t line_baud;
        bool line_dtr;
};

int usb_topology_add(World *w);
/* Main thread, lock not held. */
int usb_device_add(World *w, VBoard *b, BoardMode mode, const UsbIdentity *id, UsbDevice **ret);
void usb_device_remove(World *w, UsbDevice *d);
UsbDevice *usb_device_free(UsbDevice *d);
void usb_device_identity(VBoard *b, BoardMode mode, UsbIdentity *ret);
