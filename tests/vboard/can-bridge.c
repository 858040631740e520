/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * A mainboard running Klipper in USB-to-CAN bridge mode (--bridge IFACE):
 *
 * - on USB, while its application runs: gs_usb (1d50:606f), "Klipper",
 *   the MCU name, the chip id as serial (usb-device.c), and below its USB
 *   interface the SocketCAN interface IFACE (a `net` device of type 280);
 * - on IFACE: its own Klipper node, whose UUID is the hash of that serial
 *   (answers QUERY_UNASSIGNED, takes REBOOT: can-node.c);
 * - in its bootloader: Katapult over USB (katapult-tty.c) or the ROM's
 *   DFU, on the same port; IFACE is gone meanwhile, so every node behind
 *   it is unreachable until the application is back.
 */

#include <errno.h>

#include "can-bus.h"

int can_bridge_add(World *w, VBoard *b, const char *iface)
{
        CanUuid u;
        int ifindex, r;

        /* Klipper's UUID of a bridge is the one the host maps its USB serial to */
        r = can_uuid_from_usb_serial(b->uid, &u);
        if (r < 0)
                return r;
        ifindex = can_bus_bridge_iface(w, iface);
        if (ifindex < 0)
                return ifindex;
        r = can_node_new(&b->bridge, b, ifindex, &u);
        if (r < 0)
                return r;
        b->bridge_ifindex = ifindex;
        return 0;
}

void can_bridge_powered_up(VBoard *b, const char *usb_iface_syspath)
{
        World *w = b->world;

        g_mutex_lock(&w->lock);
        can_node_reset(b->bridge);
        g_mutex_unlock(&w->lock);
        can_bus_iface_set_present(w, b->bridge_ifindex, usb_iface_syspath);
        g_mutex_lock(&w->lock);
        vboard_event(b, "can-iface-added", "bridge interface ifindex %d", b->bridge_ifindex);
        g_mutex_unlock(&w->lock);
}

void can_bridge_powering_down(VBoard *b)
{
        World *w = b->world;
        bool app;

        if (!b->bridge)
                return;
        g_mutex_lock(&w->lock);
        app = b->mode == BOARD_MODE_APP && b->usb;
        g_mutex_unlock(&w->lock);
        if (!app)
                return;
        can_bus_iface_set_present(w, b->bridge_ifindex, NULL);
        g_mutex_lock(&w->lock);
        vboard_event(b, "can-iface-removed", "bridge interface ifindex %d", b->bridge_ifindex);
        g_mutex_unlock(&w->lock);
}
