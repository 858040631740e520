/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A snapshot of one inventory entry, copied on the main loop and handed to a
 * worker: the worker never reads the inventory (owned by the main loop).
 */

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include "inventory/inventory.h"
#include "util/macros.h"

#define JOB_DEVICE_BOOTLOADER_MODES \
        ((1u << DEVICE_MODE_DFU) | (1u << DEVICE_MODE_KATAPULT) | (1u << DEVICE_MODE_BOOTSEL))
#define JOB_DEVICE_ANY_MODE ((1u << _DEVICE_MODE_MAX) - 1)

typedef struct JobDevice {
        DeviceMode mode;
        char *id;      /* the inventory's device id */
        char *port;    /* USB port path, "1-1.3" */
        char *devnode; /* /dev/bus/usb/BBB/DDD */
        char *tty;     /* /dev/ttyACM0 (app, katapult, serial) */
        uint8_t busnum, devnum;
        uint16_t vid, pid;
        DfuseLayout *layout;     /* of the flash alt setting: a copy of what the inventory parsed */
        unsigned interface, alt; /* that alt setting */
        uint32_t transfer_size;  /* wTransferSize, 0 unknown */
        char *mcu;
        char *board, *variant;
        char *can_iface; /* the SocketCAN interface the device provides */
        bool bridge;     /* a Klipper USB-to-CAN bridge board, whose UUID: */
        CanUuid bridge_uuid;
} JobDevice;

JobDevice *job_device_free(JobDevice *d);
DEFINE_TRIVIAL_CLEANUP_FUNC(JobDevice *, job_device_free);
int job_device_copy(const JobDevice *d, JobDevice **ret);
/* Snapshot an inventory entry (main loop only). */
int job_device_from_entry(const InventoryEntry *e, JobDevice **ret);
