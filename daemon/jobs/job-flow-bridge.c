/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "can/can-transport.h"
#include "codec/can-proto.h"
#include "jobs/job-flow-bridge.h"
#include "util/time-util.h"

/* how long the admin frame may wait for room on the bus */
#define BRIDGE_ADMIN_TIMEOUT_USEC (500u * 1000u)
#define BRIDGE_POLL_NSEC          (100u * 1000u * 1000u)

int job_flow_bridge_reboot(JobWorker *w, const JobDevice *d)
{
        _cleanup_(can_transport_freep) CanTransport *t = NULL;
        uint8_t data[CAN_DATA_MAX];
        char u[13];
        int r;

        if (!d->bridge || !d->can_iface)
                return -ENODEV;
        r = can_transport_open(&t, d->can_iface);
        if (r < 0)
                return r;
        r = can_transport_admin(t, data, can_admin_encode_reboot(data, &d->bridge_uuid),
                                BRIDGE_ADMIN_TIMEOUT_USEC);
        if (r < 0)
                return r;
        job_worker_log(
                w,
                "asked Klipper on the bridge board %s to reboot into its bootloader (CAN admin REBOOT "
                "to %s on %s, the interface it provides; the nodes behind it are unreachable "
                "until it is back)",
                d->port, can_uuid_format(&d->bridge_uuid, u), d->can_iface);
        return 0;
}

int job_flow_bridge_wait_iface(JobWorker *w, const char *iface, uint64_t timeout_usec)
{
        uint64_t end = now_usec(CLOCK_MONOTONIC) + timeout_usec;

        for (;;) {
                if (can_interface_is_up(iface) != -ENODEV) {
                        job_worker_log(w, "the bridge's CAN interface %s is back", iface);
                        return 0;
                }
                if (job_worker_cancelled(w))
                        return -ECANCELED;
                if (now_usec(CLOCK_MONOTONIC) >= end)
                        return -ETIMEDOUT;
                nanosleep(&(struct timespec){ .tv_nsec = BRIDGE_POLL_NSEC }, NULL);
        }
}

typedef struct BridgeFind {
        const CanUuid *uuid;
        const char *iface;
        const InventoryEntry *found;
} BridgeFind;

static void find_uuid(const InventoryEntry *e, void *userdata)
{
        BridgeFind *b = userdata;
        CanUuid u;

        if (!b->found && inventory_entry_bridge_uuid(e, &u) && can_uuid_equal(&u, b->uuid))
                b->found = e;
}

const char *job_bridge_port_for_uuid(const Inventory *inv, const CanUuid *uuid)
{
        BridgeFind b = { .uuid = uuid };

        inventory_foreach(inv, find_uuid, &b);
        return b.found ? b.found->port : NULL;
}

static void find_away(const InventoryEntry *e, void *userdata)
{
        BridgeFind *b = userdata;

        if (!b->found && e->can_iface_last && streq(e->can_iface_last, b->iface) && !e->can_iface)
                b->found = e;
}

static void find_provider(const InventoryEntry *e, void *userdata)
{
        BridgeFind *b = userdata;

        if (!b->found && streq_ptr(e->can_iface, b->iface))
                b->found = e;
}

const InventoryEntry *job_bridge_away_for_iface(const Inventory *inv, const char *iface)
{
        BridgeFind b = { .iface = iface };

        /* another device may provide the name now (the adapter moved ports) */
        inventory_foreach(inv, find_provider, &b);
        if (b.found)
                return NULL;
        inventory_foreach(inv, find_away, &b);
        return b.found;
}
