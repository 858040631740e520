/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A mainboard running Klipper in USB-to-CAN bridge mode (gs_usb, no tty):
 * it is rebooted into its bootloader over the CAN interface it provides
 * (Klipper's admin REBOOT to its own UUID), then flashed on its USB port
 * like any board; after the flash the job waits for the interface to be
 * back, since every node behind it depends on it. Worker thread.
 */

#include "jobs/job-device.h"
#include "jobs/job-worker.h"

/* Klipper's REBOOT to the bridge's UUID on its interface: 0 or a negative
 * errno (-ENODEV: the interface is gone). */
int job_flow_bridge_reboot(JobWorker *w, const JobDevice *d);
/* Until `iface` exists again: 0, -ETIMEDOUT or -ECANCELED. */
int job_flow_bridge_wait_iface(JobWorker *w, const char *iface, uint64_t timeout_usec);

/* Main loop, at submission (the inventory is the main loop's): */
/* The USB port of the bridge board whose own UUID is `uuid`, or NULL. */
const char *job_bridge_port_for_uuid(const Inventory *inv, const CanUuid *uuid);
/* The board on whose USB port `iface` was last seen while that interface
 * is gone (the bridge is in its bootloader, being flashed, or unplugged),
 * or NULL. */
const InventoryEntry *job_bridge_away_for_iface(const Inventory *inv, const char *iface);
