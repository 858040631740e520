/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What the virtual CAN bus (can-bus.c, inside vboard) and the LD_PRELOAD
 * layer (can-preload.c, inside every program vboard runs) share.
 *
 * A program's CAN_RAW socket is a real AF_UNIX SOCK_SEQPACKET connection
 * to the bus at $VBOARD_CAN_BUS, so read/write/poll/epoll work unchanged:
 * every message of exactly sizeof(struct can_frame) bytes is a frame, in
 * both directions. The preload sends control messages (struct VcanCtl,
 * never 16 bytes long) for bind and CAN_RAW_FILTER.
 *
 * The interfaces (name, index, up/down, bus-off) live in a small file at
 * $VBOARD_CAN_STATE that vboard writes and the preload maps read-only:
 * if_nametoindex/SIOCGIFINDEX and the ENETDOWN/ENOBUFS checks on write
 * read it without a round trip.
 */

#include <linux/can.h>
#include <stdint.h>

#define VCAN_ENV_BUS   "VBOARD_CAN_BUS"
#define VCAN_ENV_STATE "VBOARD_CAN_STATE"

#define VCAN_MAX_IFACES  8
#define VCAN_IFINDEX_0   40 /* ifindex of the first interface (lo, eth0 keep theirs) */
#define VCAN_STATE_MAGIC 0x5643414eu
#define VCAN_MAX_FILTERS 32

enum {
        VCAN_PRESENT = 1u << 0, /* the interface exists (a bridge's only while its gs_usb face is up) */
        VCAN_UP = 1u << 1,      /* administratively up */
        VCAN_BUS_OFF = 1u << 2, /* the controller went bus-off: writes fail with ENOBUFS */
};

typedef struct VcanIface {
        char name[16];
        int32_t ifindex;
        uint32_t flags; /* VCAN_* (written with __atomic stores) */
} VcanIface;

typedef struct VcanState {
        uint32_t magic;
        uint32_t n_ifaces;
        VcanIface ifaces[VCAN_MAX_IFACES];
} VcanState;

enum {
        VCAN_CTL_BIND = 1,   /* ifindex (0: all interfaces) */
        VCAN_CTL_FILTER = 2, /* n_filters filters follow; 0 filters: receive nothing */
};

typedef struct VcanCtl {
        uint32_t magic; /* VCAN_STATE_MAGIC */
        uint32_t op;
        int32_t ifindex;
        uint32_t n_filters;
        uint32_t reserved; /* keeps the header at 20 bytes: no control message is 16 bytes */
        struct can_filter filters[];
} VcanCtl;
