/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The virtual CAN bus inside vboard (see can-wire.h for how programs reach
 * it): interfaces created on first use (a `net` device with type 280 in
 * the testbed, index from VCAN_IFINDEX_0), programs' sockets as clients,
 * and the boards defined with --can as nodes (can-node.c).
 *
 * Main thread only; node models are fed with World.lock held.
 */

#include <jansson.h>
#include <linux/can.h>

#include "codec/can-proto.h"
#include "vboard.h"

typedef struct CanBus CanBus;
typedef struct CanNode CanNode;

/* Make the bus (once) and the interface (on first use); returns its ifindex. */
int can_bus_iface(World *w, const char *name);
/* Put board b on interface `iface` with `uuid` (NULL: from its --uid). */
int can_bus_add_node(World *w, VBoard *b, const char *iface, const CanUuid *uuid);
/* Start listening and publish the environment for the command
 * (VBOARD_CAN_BUS, VBOARD_CAN_STATE, LD_PRELOAD += the layer). No-op
 * without a CAN interface. */
int can_bus_start(World *w);
void can_bus_free(World *w);
/* ctl verbs: can-up, can-down, can-bus-off, can-bus-on IFACE */
json_t *can_bus_control(World *w, const char *verb, const char *iface);

/* A bridge board's interface: made absent (no sysfs device, VCAN_PRESENT
 * clear); returns its ifindex. */
int can_bus_bridge_iface(World *w, const char *name);
/* The interface appears below `parent` (the bridge's USB interface), or
 * goes away (parent NULL). Main thread, lock NOT held. */
void can_bus_iface_set_present(World *w, int ifindex, const char *parent);

/* can-bridge.c: a USB-to-CAN bridge board (--bridge IFACE). Its Klipper
 * face on the bus is a CanNode in VBoard.bridge, fed while the board runs
 * its application; its interface exists only then. */
int can_bridge_add(World *w, VBoard *b, const char *iface);
/* From vboard_power_up/down (main thread, lock NOT held), after the USB
 * device was added / before it is removed. */
void can_bridge_powered_up(VBoard *b, const char *usb_iface_syspath);
void can_bridge_powering_down(VBoard *b);
/* can-node.c: forget a node id and a reboot under way (lock held) */
void can_node_reset(CanNode *n);

/* From a node model (lock held): a frame onto the node's interface. */
void can_bus_deliver(World *w, int ifindex, const struct can_frame *f);

/* can-node.c: the node models behind a VBoard (lock held unless said). */
int can_node_new(CanNode **ret, VBoard *b, int ifindex, const CanUuid *uuid);
CanNode *can_node_free(CanNode *n);
int can_node_ifindex(const CanNode *n);
void can_node_receive(CanNode *n, const struct can_frame *f);
/* power (main thread, lock NOT held), as vboard_power_up/down for USB boards */
int can_node_power_up(VBoard *b, BoardMode mode);
void can_node_power_down(VBoard *b, const char *why);
void can_node_describe(CanNode *n, json_t *o);
