/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The inventory: one entry per board, keyed by the physical USB port path
 * of its usb_device ("1-1.3"), which stays the same while the board
 * re-enumerates between application and bootloader mode (VID:PID, serial
 * and devnum change; the port does not).
 *
 * Fed by udev (enumeration at start, then a monitor on subsystems usb and
 * tty). DFU devices are probed once when they appear: a short-lived worker
 * thread opens the device, reads every alt setting's string with a raw
 * GET_DESCRIPTOR and releases it; the result comes back to the main loop
 * through a pipe. The main loop never blocks on a device.
 *
 * Entries are owned by the inventory and valid until the next return to
 * the main loop (or until an INVENTORY_EVENT_REMOVED for them): copy what
 * you keep, or keep the port string and look the entry up again.
 */

#include <jansson.h>
#include <libudev.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "boards/board-db.h"
#include "codec/can-proto.h"
#include "codec/dfuse-layout.h"
#include "util/macros.h"

typedef struct Inventory Inventory;

typedef enum DeviceMode {
        DEVICE_MODE_APP,      /* Klipper application (1d50:614e) */
        DEVICE_MODE_DFU,      /* STM32 ROM DFU (0483:df11) or any DFU interface */
        DEVICE_MODE_KATAPULT, /* Katapult bootloader (1d50:6177) */
        DEVICE_MODE_SERIAL,   /* some other USB serial port */
        DEVICE_MODE_UNKNOWN,  /* a USB device the board database knows, in no mode above */
        DEVICE_MODE_BOOTSEL,  /* RP2040 boot ROM in BOOTSEL (2e8a:0003; RP2350's 2e8a:000f too) */
        _DEVICE_MODE_MAX,
        _DEVICE_MODE_INVALID = -EINVAL,
} DeviceMode;

typedef struct InventoryAlt {
        unsigned interface;
        unsigned alt;
        char *name;          /* decoded string as received (may carry garbage) */
        DfuseLayout *layout; /* NULL when the string is no DfuSe layout */
        bool string_patched; /* descriptor shorter than its bLength claimed */
        char *diagnostic;    /* NULL or a sentence for a person */
} InventoryAlt;

typedef struct InventoryCandidate {
        const Board *board;
        const BoardVariant *variant;
} InventoryCandidate;

typedef struct InventoryEntry {
        char *port; /* the id: "1-1.3" */
        DeviceMode mode;
        bool present; /* a usb_device is on the port (else only remembered) */
        bool visible; /* reported to clients (recognised, see inventory.c) */

        /* the usb_device currently on the port */
        char *usb_syspath;
        char *usb_devnode; /* /dev/bus/usb/BBB/DDD */
        unsigned busnum, devnum;
        uint16_t vid, pid;
        char *manufacturer, *product, *serial;
        bool has_dfu_interface;

        /* its tty, if any */
        char *tty_syspath;
        char *tty;   /* /dev/ttyACM0 */
        char *by_id; /* /dev/serial/by-id/... */

        /* the SocketCAN interface the usb_device provides (a gs_usb
         * adapter, or a Klipper USB-to-CAN bridge board), if any */
        char *can_syspath;
        char *can_iface;      /* "can0" */
        char *can_iface_last; /* the last one it provided (kept while it is away) */

        /* DFU probe result */
        bool probed;
        bool probing;
        InventoryAlt *alts;
        size_t n_alts;
        uint32_t transfer_size; /* wTransferSize of the DFU functional descriptor, 0 unknown */
        uint8_t rom_version;    /* BOOTSEL: the RP2040 boot ROM's version byte, 0 unknown */
        char *probe_diagnostic; /* why the probe failed, or NULL */

        /* identification */
        char *mcu;
        InventoryCandidate *candidates;
        size_t n_candidates;
        const Board *board;          /* set when all candidates are one board */
        const BoardVariant *variant; /* set when exactly one candidate */
        char **diagnostics;          /* NULL-terminated */
        size_t n_diagnostics;

        /* what was seen on this port before, for matching across modes */
        char *last_mcu;

        /* Klipper's identify (or Moonraker's mcu object) while in app mode:
         * valid only while firmware_generation == generation */
        char *firmware_version;
        char *firmware_mcu;
        char *firmware_source; /* "identify", "moonraker" */
        uint64_t firmware_generation;

        uint64_t since_usec; /* CLOCK_REALTIME when this device appeared */
        uint64_t generation; /* bumped whenever the usb_device changes (probe staleness) */
        json_t *reported;    /* the object listeners last heard about */
} InventoryEntry;

typedef enum InventoryEvent {
        INVENTORY_EVENT_ADDED,
        INVENTORY_EVENT_CHANGED,
        INVENTORY_EVENT_REMOVED,
        _INVENTORY_EVENT_MAX,
        _INVENTORY_EVENT_INVALID = -EINVAL,
} InventoryEvent;

/*
 * Called on the main loop after the entry changed. A DFU device is ADDED at
 * once with probed == false and CHANGED when its descriptors have been read
 * (probed == true, alts/layout filled or probe_diagnostic set): wait for
 * that before relying on the layout. A board re-enumerating on the same port
 * (app -> dfu) is REMOVED (with its last state) then ADDED with the same
 * port; last_mcu then holds what the port showed before. The entry is
 * readable during the callback only. A callback may add or remove listeners
 * (itself included); a listener removed during an event is not called again.
 */
typedef void (*InventoryListener)(Inventory *inv, InventoryEvent event, const InventoryEntry *entry,
                                  void *userdata);

/* `boards` is borrowed and must outlive the inventory; may be NULL. */
int inventory_new(Inventory **ret, sd_event *event, const BoardDb *boards);
Inventory *inventory_free(Inventory *inv);
DEFINE_TRIVIAL_CLEANUP_FUNC(Inventory *, inventory_free);

/* Enumerate present devices, then follow udev. Events for the initial
 * enumeration are delivered to listeners already registered. */
int inventory_start(Inventory *inv);

int inventory_add_listener(Inventory *inv, InventoryListener cb, void *userdata);
void inventory_remove_listener(Inventory *inv, InventoryListener cb, void *userdata);

/* Bumped with every event listeners hear: JSON built from the entries is
 * still current while this stays the same. */
uint64_t inventory_changes(const Inventory *inv);

/* Visible entries, sorted by port. */
size_t inventory_count(const Inventory *inv);
const InventoryEntry *inventory_get(const Inventory *inv, const char *port);
/* Calls f for every visible entry in port order. */
void inventory_foreach(const Inventory *inv, void (*f)(const InventoryEntry *e, void *userdata),
                       void *userdata);

/*
 * Find a visible entry by port path, tty path, /dev/serial/by-id path, usb
 * devnode, or board name (when exactly one entry matches). -ENODEV when
 * nothing matches, -ENOTUNIQ when several do (then *ret_matches, if given,
 * gets a malloc'd NULL-terminated array of the matching entries).
 */
int inventory_find(const Inventory *inv, const char *key, const InventoryEntry **ret,
                   const InventoryEntry ***ret_matches);

/*
 * What the firmware on the port said about itself (Klipper's data
 * dictionary), for the usb_device of `generation` (dropped when the device
 * changed since). Emits CHANGED when the device object changes.
 */
int inventory_set_firmware(Inventory *inv, const char *port, uint64_t generation, const char *version,
                           const char *mcu, const char *source);

/* Turn off DFU probing (unit tests with synthetic devices, fuzzing). */
void inventory_set_probe_enabled(Inventory *inv, bool enabled);

/* The JSON device object of proto/API.md. */
json_t *inventory_entry_to_json(const InventoryEntry *e);
/* A Klipper USB-to-CAN bridge board (gs_usb whose serial maps to a CAN
 * UUID): true and its UUID in *ret (may be NULL). */
bool inventory_entry_bridge_uuid(const InventoryEntry *e, CanUuid *ret);
json_t *dfuse_layout_to_json(const DfuseLayout *l);

const char *device_mode_to_string(DeviceMode m);
DeviceMode device_mode_from_string(const char *s);
const char *inventory_event_to_string(InventoryEvent e);
