/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Klipper's identify over CAN (Klipper docs/CANBUS_protocol.md,
 * src/generic/canserial.c): a node in Klipper's application answers the
 * admin QUERY_UNASSIGNED only while nobody has given it a node id. Only
 * such a node is asked: it gets node id `node_id` (SET_NODEID 0x01 + UUID
 * + id), and the MCU protocol then runs on 0x100 + 2N (host -> node) and
 * 0x100 + 2N + 1 (node -> host) exactly as on a tty
 * (serial/klipper-identify.c). A node klippy talks to has a node id and
 * stays silent: it is never touched (its version comes from Moonraker).
 *
 * The node keeps the id afterwards (Klipper has no command to drop it);
 * klippy gives it its own when it connects. Ids are handed out from the
 * top of the range (klippy counts up from the bottom), one per node, since
 * Klipper shuts down a node that sees its id given to another UUID.
 *
 * Blocking with bounded waits: run it on a worker thread.
 */

#include <stdatomic.h>
#include <stdint.h>

#include "codec/can-proto.h"
#include "codec/klipper-proto.h"

/* The highest node id (0x100 + 2 * 254 + 1 stays below the admin ids). */
#define CAN_IDENTIFY_NODEID_TOP 254u

/*
 * 0 with *ret filled. -EBUSY: the node did not answer the query as an
 * unassigned Klipper (klippy holds it, or it is off the bus); -EPROTO: it
 * answered as Katapult (in its bootloader); -ETIMEDOUT: it took the node
 * id but did not answer identify; -EBADMSG; -ENODEV / -ENETDOWN / -ENOBUFS
 * from the bus (can-transport.h); -ECANCELED.
 */
int can_identify_node(const char *iface, const CanUuid *uuid, uint8_t node_id, uint64_t timeout_usec,
                      const atomic_bool *cancel, KlipperDictInfo *ret);
