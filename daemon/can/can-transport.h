/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * SocketCAN for the Katapult session and Klipper's admin protocol
 * (codec/can-proto.h): a CAN_RAW socket bound to one interface, with
 * kernel filters for the admin answers (0x3f1) and the node's answer id.
 *
 * As a SerialTransport it carries the byte stream of one node id:
 * writes are cut into 8-byte frames on 0x100 + 2N, reads join the data of
 * frames from 0x100 + 2N + 1. The Katapult session runs over it unchanged.
 *
 * Blocking with bounded timeouts, no logging (worker thread). Errors:
 * -ENODEV no such interface, -ENETDOWN interface down, -ENOBUFS the
 * controller's queue stayed full (bus-off, nobody acknowledging frames),
 * -ETIMEDOUT.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec/can-proto.h"
#include "util/macros.h"
#include "serial/serial-transport.h"

typedef struct CanTransport CanTransport;

/* A node's answer to QUERY_UNASSIGNED. */
typedef struct CanNodeAnswer {
        CanUuid uuid;
        CanApp app;
} CanNodeAnswer;

/* Open and bind a CAN_RAW socket on `iface` ("can0"). */
int can_transport_open(CanTransport **ret, const char *iface);
CanTransport *can_transport_free(CanTransport *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(CanTransport *, can_transport_free);

/* Whether the interface is administratively up (sysfs flags; -ENODEV when
 * it does not exist). */
int can_interface_is_up(const char *iface);

/* Send one admin frame on 0x3f0. */
int can_transport_admin(CanTransport *t, const uint8_t *data, size_t size, uint64_t timeout_usec);
/*
 * QUERY_UNASSIGNED and collect the answers for `window_usec` (duplicates
 * dropped); returns how many were written to ret[] (at most max).
 */
int can_transport_query(CanTransport *t, uint64_t window_usec, CanNodeAnswer *ret, size_t max);
/* Talk to node id `node_id` from now on (and drop what was buffered). */
int can_transport_select_node(CanTransport *t, uint8_t node_id);
SerialTransport *can_transport_get_transport(CanTransport *t);
/* For an event loop: the socket, and the next query answer without
 * waiting (1 one read, 0 none left, or a negative errno). */
int can_transport_get_fd(const CanTransport *t);
int can_transport_next_answer(CanTransport *t, CanNodeAnswer *ret);
/* Frames written and read, for the job log. */
void can_transport_get_counts(const CanTransport *t, uint64_t *ret_tx, uint64_t *ret_rx);
