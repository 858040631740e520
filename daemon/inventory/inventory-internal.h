/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Inside the inventory: the udev glue turns udev devices into these plain
 * descriptions, so the bookkeeping can be unit-tested with synthetic
 * inputs (tests/unit/test-inventory.c) without udev or umockdev.
 */

#include "inventory/inventory.h"

typedef struct InventoryUsbInfo {
        const char *syspath;
        const char *port; /* sysname of the usb_device, "1-1.3" */
        const char *devnode;
        unsigned busnum, devnum;
        uint16_t vid, pid;
        const char *manufacturer, *product, *serial;
        bool has_dfu_interface;
} InventoryUsbInfo;

typedef struct InventoryTtyInfo {
        const char *syspath;
        const char *devnode;
        const char *by_id;
        const char *usb_port; /* port of the usb_device above it */
} InventoryTtyInfo;

/* A SocketCAN net device (type 280) below a usb_device. */
typedef struct InventoryCanInfo {
        const char *syspath;
        const char *name;     /* "can0" */
        const char *usb_port; /* port of the usb_device above it */
} InventoryCanInfo;

typedef struct InventoryProbeResult {
        char *port;
        uint64_t generation;
        int error; /* < 0: the probe failed; diagnostic says why */
        char *diagnostic;
        InventoryAlt *alts;
        size_t n_alts;
        uint32_t transfer_size;
        uint8_t rom_version; /* BOOTSEL devices */
} InventoryProbeResult;

int inventory_apply_usb(Inventory *inv, const InventoryUsbInfo *info);
int inventory_remove_usb(Inventory *inv, const char *syspath);
int inventory_apply_tty(Inventory *inv, const InventoryTtyInfo *info);
int inventory_remove_tty(Inventory *inv, const char *syspath);
int inventory_apply_can(Inventory *inv, const InventoryCanInfo *info);
int inventory_remove_can(Inventory *inv, const char *syspath);
/* Takes ownership of r's contents. */
int inventory_apply_probe(Inventory *inv, InventoryProbeResult *r);
void inventory_probe_result_clear(InventoryProbeResult *r);
void inventory_alt_clear(InventoryAlt *a);

/* udev glue (inventory-udev.c) */
typedef struct InventoryUdev InventoryUdev;
int inventory_udev_start(InventoryUdev **ret, Inventory *inv, sd_event *event);
InventoryUdev *inventory_udev_free(InventoryUdev *u);

/* probe worker (inventory-probe.c): starts a thread; the result arrives via
 * the inventory's pipe and inventory_apply_probe(). */
typedef struct InventoryProber InventoryProber;
int inventory_prober_new(InventoryProber **ret, Inventory *inv, sd_event *event);
InventoryProber *inventory_prober_free(InventoryProber *p);
int inventory_prober_start(InventoryProber *p, const InventoryEntry *e);

/* identification (inventory-match.c): fills mcu, candidates, board,
 * variant, diagnostics from the entry's ids, strings and layouts. */
int inventory_entry_identify(InventoryEntry *e, const BoardDb *db);
void inventory_entry_clear_identity(InventoryEntry *e);
