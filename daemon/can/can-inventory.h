/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * CAN nodes for `flashctl list`: the SocketCAN interfaces udev shows
 * (subsystem net, type 280 = ARPHRD_CAN), and on each of them the nodes
 * that answer Klipper's QUERY_UNASSIGNED (an unassigned Klipper, or
 * Katapult), sent every few seconds from the main loop (answers arrive on
 * the socket's io source). Nodes that Klipper already assigned (klippy
 * running) do not answer: UUIDs the user gave (flash targets IFACE:UUID)
 * are remembered and listed with mode "assigned" while silent.
 */

#include <jansson.h>
#include <systemd/sd-event.h>

#include "codec/can-proto.h"
#include "util/macros.h"

typedef struct CanInventory CanInventory;

int can_inventory_new(CanInventory **ret, sd_event *event);
CanInventory *can_inventory_free(CanInventory *ci);
DEFINE_TRIVIAL_CLEANUP_FUNC(CanInventory *, can_inventory_free);
/* Find the interfaces and send the first query. */
int can_inventory_start(CanInventory *ci);
/* A UUID the user named on `iface`: listed even while it is silent. */
int can_inventory_remember(CanInventory *ci, const char *iface, const CanUuid *uuid);
/* The [mcu NAME] sections of a printer.cfg with a canbus_uuid: remembered
 * under NAME. Returns how many, or a negative errno (file unreadable). */
int can_inventory_load_printer_cfg(CanInventory *ci, const char *path);
/* A printer.cfg MCU name -> "IFACE:UUID" into buf (at least 32 bytes): 0,
 * or -ENOENT. */
int can_inventory_resolve(CanInventory *ci, const char *name, char *buf, size_t size);
/* Append one object per node: id, port ("can0:0123456789ab"), transport
 * "can", interface, uuid, mode ("klipper", "katapult", "assigned"),
 * name (printer.cfg's MCU name, or null). */
int can_inventory_append_json(CanInventory *ci, json_t *array);
