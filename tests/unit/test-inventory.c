/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Inventory bookkeeping with synthetic udev-like inputs: modes, identity by
 * port across re-enumeration, events, lookups, DFU probe results and board
 * matching (no udev, no USB). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "inventory/inventory-internal.h"
#include "tests.h"

typedef struct Seen {
        InventoryEvent event;
        char port[32];
        json_t *object;
} Seen;

static Seen seen[64];
static size_t n_seen;

static void on_event(Inventory *inv, InventoryEvent event, const InventoryEntry *e, void *userdata)
{
        CHECK(userdata == seen);
        if (n_seen >= ELEMENTSOF(seen))
                return;
        seen[n_seen].event = event;
        snprintf(seen[n_seen].port, sizeof(seen[n_seen].port), "%s", e->port);
        seen[n_seen].object = inventory_entry_to_json(e);
        n_seen++;
}

static void reset_seen(void)
{
        for (size_t i = 0; i < n_seen; i++)
                json_decref(seen[i].object);
        n_seen = 0;
}

static const char *str(json_t *o, const char *key)
{
        return json_string_value(json_object_get(o, key));
}

#define CHECK_EVENTS(n, ev)                                      \
        do {                                                     \
                CHECK_INT(n_seen, (n));                          \
                if (n_seen > 0)                                  \
                        CHECK_INT(seen[n_seen - 1].event, (ev)); \
        } while (0)

static InventoryProbeResult probe_result(const InventoryEntry *e, const char *layout0)
{
        InventoryProbeResult r = { .port = strdup(e->port),
                                   .generation = e->generation,
                                   .transfer_size = 2048 };
        r.alts = calloc(2, sizeof(InventoryAlt));
        r.n_alts = 2;
        r.alts[0].name = strdup(layout0);
        CHECK_INT(dfuse_layout_parse(layout0, strlen(layout0), &r.alts[0].layout), 0);
        if (r.alts[0].layout && r.alts[0].layout->diagnostic)
                r.alts[0].diagnostic = strdup(r.alts[0].layout->diagnostic);
        r.alts[1].alt = 1;
        r.alts[1].name = strdup("@Option Bytes  /0x1FFFC000/01*016 e");
        dfuse_layout_parse(r.alts[1].name, strlen(r.alts[1].name), &r.alts[1].layout);
        return r;
}

static void test_lifecycle(Inventory *inv)
{
        const InventoryEntry *e;

        /* Klipper in application mode on 1-1.3. */
        InventoryUsbInfo app = {
                .syspath = "/sys/devices/usb1/1-1/1-1.3",
                .port = "1-1.3",
                .devnode = "/dev/bus/usb/001/005",
                .busnum = 1,
                .devnum = 5,
                .vid = 0x1d50,
                .pid = 0x614e,
                .manufacturer = "Klipper",
                .product = "stm32f429xx",
                .serial = "1E0030000851383531393138",
        };
        CHECK_INT(inventory_apply_usb(inv, &app), 0);
        CHECK_EVENTS(1, INVENTORY_EVENT_ADDED);
        CHECK_STR(str(seen[0].object, "mode"), "app");
        CHECK_STR(str(seen[0].object, "id"), "1-1.3");
        CHECK_STR(str(seen[0].object, "usb_id"), "1d50:614e");
        CHECK_STR(str(seen[0].object, "mcu"), "stm32f429xx");
        CHECK_INT(json_array_size(json_object_get(seen[0].object, "board_candidates")),
                  2); /* octopus, octopus-pro */
        CHECK(json_is_null(json_object_get(seen[0].object, "board")));
        CHECK(json_is_null(json_object_get(seen[0].object, "layout")));
        /* Board unknown: only the hints both candidates share. */
        bool has_f429_hint = false, has_crystal_hint = false;
        size_t k;
        json_t *h;
        json_array_foreach (json_object_get(seen[0].object, "hints"), k, h) {
                has_f429_hint |=
                        strstr(json_string_value(h), "F429 may ignore the 1200-baud reboot") != NULL;
                has_crystal_hint |= strstr(json_string_value(h), "crystal") != NULL;
        }
        CHECK(has_f429_hint);
        CHECK(!has_crystal_hint || json_array_size(json_object_get(seen[0].object, "hints")) > 0);

        /* The same uevent again changes nothing. */
        CHECK_INT(inventory_apply_usb(inv, &app), 0);
        CHECK_EVENTS(1, INVENTORY_EVENT_ADDED);

        InventoryTtyInfo tty = { .syspath = "/sys/devices/usb1/1-1/1-1.3/1-1.3:1.0/tty/ttyACM0",
                                 .devnode = "/dev/ttyACM0",
                                 .by_id = "/dev/serial/by-id/usb-Klipper_stm32f429xx_1E00-if00",
                                 .usb_port = "1-1.3" };
        CHECK_INT(inventory_apply_tty(inv, &tty), 0);
        CHECK_EVENTS(2, INVENTORY_EVENT_CHANGED);
        CHECK_STR(str(seen[1].object, "path"), "/dev/ttyACM0");
        CHECK_STR(str(seen[1].object, "tty"), "/dev/ttyACM0");

        /* Lookups: port, tty, by-id, devnode; board name ambiguous here. */
        CHECK_INT(inventory_find(inv, "1-1.3", &e, NULL), 0);
        CHECK_INT(inventory_find(inv, "/dev/ttyACM0", &e, NULL), 0);
        CHECK_INT(inventory_find(inv, "/dev/serial/by-id/usb-Klipper_stm32f429xx_1E00-if00", &e, NULL), 0);
        CHECK_INT(inventory_find(inv, "/dev/bus/usb/001/005", &e, NULL), 0);
        CHECK_INT(inventory_find(inv, "octopus-pro", &e, NULL), 0); /* the only present one that can be */
        CHECK_INT(inventory_find(inv, "1-1.4", &e, NULL), -ENODEV);
        CHECK_INT(inventory_find(inv, "skr-3", &e, NULL), -ENODEV);

        /* Reboot into the ROM bootloader: tty goes, device goes, DFU comes. */
        CHECK_INT(inventory_remove_tty(inv, tty.syspath), 1);
        CHECK_EVENTS(3, INVENTORY_EVENT_CHANGED);
        CHECK_INT(inventory_remove_usb(inv, app.syspath), 1);
        CHECK_EVENTS(4, INVENTORY_EVENT_REMOVED);
        CHECK_INT(inventory_count(inv), 0);
        CHECK(inventory_get(inv, "1-1.3") == NULL);

        InventoryUsbInfo dfu = {
                .syspath = "/sys/devices/usb1/1-1/1-1.3",
                .port = "1-1.3",
                .devnode = "/dev/bus/usb/001/006",
                .busnum = 1,
                .devnum = 6,
                .vid = 0x0483,
                .pid = 0xdf11,
                .manufacturer = "STMicroelectronics",
                .product = "STM32  BOOTLOADER",
                .serial = "356234553133",
                .has_dfu_interface = true,
        };
        CHECK_INT(inventory_apply_usb(inv, &dfu), 0);
        CHECK_EVENTS(5, INVENTORY_EVENT_ADDED);
        CHECK_STR(str(seen[4].object, "id"), "1-1.3"); /* same identity */
        CHECK_STR(str(seen[4].object, "mode"), "dfu");
        CHECK_STR(str(seen[4].object, "previous_mcu"), "stm32f429xx");
        CHECK_STR(str(seen[4].object, "path"), "/dev/bus/usb/001/006");
        CHECK(json_is_false(json_object_get(seen[4].object, "probed")));

        /* The probe of an older incarnation is dropped. */
        e = inventory_get(inv, "1-1.3");
        InventoryProbeResult stale = probe_result(e, "@Internal Flash  /0x08000000/04*016Kg");
        stale.generation--;
        CHECK_INT(inventory_apply_probe(inv, &stale), 0);
        CHECK_EVENTS(5, INVENTORY_EVENT_ADDED);

        /* Garbage after the last segment: all three groups kept, F429 found. */
        static const char garbage[] = "@Internal Flash  /0x08000000/04*016Kg,01*064Kg,07*128Kg"
                                      "\xea\xb1\x90\xc6\xa8\xe2\xb9\x94";
        InventoryProbeResult r = probe_result(e, garbage);
        CHECK_INT(inventory_apply_probe(inv, &r), 0);
        CHECK_EVENTS(6, INVENTORY_EVENT_CHANGED);
        json_t *o = seen[5].object;
        CHECK(json_is_true(json_object_get(o, "probed")));
        CHECK_INT(json_integer_value(json_object_get(o, "transfer_size")), 2048);
        json_t *sectors = json_object_get(json_array_get(json_object_get(o, "layout"), 0), "sectors");
        CHECK_INT(json_array_size(sectors), 3);
        static const int expect[3][2] = { { 4, 16384 }, { 1, 65536 }, { 7, 131072 } };
        for (size_t i = 0; i < 3; i++) {
                json_t *s = json_array_get(sectors, i);
                CHECK_INT(json_integer_value(json_object_get(s, "count")), expect[i][0]);
                CHECK_INT(json_integer_value(json_object_get(s, "size")), expect[i][1]);
                CHECK_INT(json_integer_value(json_object_get(s, "flags")), 7);
        }
        CHECK_INT(json_array_size(json_object_get(o, "alt_settings")), 2);
        CHECK(json_is_true(
                json_object_get(json_array_get(json_object_get(o, "alt_settings"), 0), "truncated")));
        /* F429 and F407 share this layout; what the port showed in app mode decides. */
        CHECK_STR(str(o, "mcu"), "stm32f429xx");
        CHECK_INT(json_array_size(json_object_get(o, "board_candidates")), 2);
        json_t *diags = json_object_get(o, "diagnostics");
        CHECK(json_array_size(diags) >= 2);
        CHECK(strstr(json_string_value(json_array_get(diags, 0)), "alt 0:") != NULL);

        /* Back to the application. */
        CHECK_INT(inventory_remove_usb(inv, dfu.syspath), 1);
        CHECK_EVENTS(7, INVENTORY_EVENT_REMOVED);
        app.devnum = 7;
        CHECK_INT(inventory_apply_usb(inv, &app), 0);
        CHECK_EVENTS(8, INVENTORY_EVENT_ADDED);
        CHECK_STR(str(seen[7].object, "mode"), "app");
        CHECK(json_is_null(json_object_get(seen[7].object, "layout")));
        CHECK_INT(inventory_count(inv), 1);
}

static void test_layout_short_and_unknown(Inventory *inv)
{
        /* A DFU device whose layout lacks groups the database lists. */
        InventoryUsbInfo dfu = {
                .syspath = "/sys/devices/usb1/1-1/1-1.5",
                .port = "1-1.5",
                .devnode = "/dev/bus/usb/001/010",
                .busnum = 1,
                .devnum = 10,
                .vid = 0x0483,
                .pid = 0xdf11,
                .has_dfu_interface = true,
        };
        CHECK_INT(inventory_apply_usb(inv, &dfu), 0);
        const InventoryEntry *e = inventory_get(inv, "1-1.5");
        CHECK(e != NULL);
        InventoryProbeResult r = probe_result(e, "@Internal Flash  /0x08000000/04*016Kg,01*064Kg");
        CHECK_INT(inventory_apply_probe(inv, &r), 0);
        e = inventory_get(inv, "1-1.5");
        CHECK_INT(e->n_candidates, 0);
        CHECK(e->mcu == NULL);
        CHECK(e->n_diagnostics >= 1 && strstr(e->diagnostics[e->n_diagnostics - 1], "incomplete"));

        /* The H723 layout names one MCU (three boards). */
        CHECK_INT(inventory_remove_usb(inv, dfu.syspath), 1);
        dfu.devnum = 11;
        CHECK_INT(inventory_apply_usb(inv, &dfu), 0);
        e = inventory_get(inv, "1-1.5");
        InventoryProbeResult h7 = probe_result(e, "@Internal Flash  /0x08000000/08*128Kg");
        CHECK_INT(inventory_apply_probe(inv, &h7), 0);
        e = inventory_get(inv, "1-1.5");
        CHECK_STR(e->mcu, "stm32h723xx");
        CHECK(e->n_candidates >= 2);
        CHECK(e->board == NULL);
        CHECK_INT(inventory_remove_usb(inv, dfu.syspath), 1);
}

static void test_other_devices(Inventory *inv)
{
        size_t before = n_seen;

        /* A keyboard is none of our business. */
        InventoryUsbInfo kbd = { .syspath = "/sys/devices/usb1/1-1/1-1.9",
                                 .port = "1-1.9",
                                 .busnum = 1,
                                 .devnum = 20,
                                 .vid = 0x046d,
                                 .pid = 0xc31c };
        CHECK_INT(inventory_apply_usb(inv, &kbd), 0);
        CHECK_INT(n_seen, before);
        CHECK(inventory_get(inv, "1-1.9") == NULL);

        /* A CH340 serial adapter is a "serial" device once its tty shows up. */
        InventoryUsbInfo ch340 = { .syspath = "/sys/devices/usb1/1-1/1-1.10",
                                   .port = "1-1.10",
                                   .busnum = 1,
                                   .devnum = 21,
                                   .vid = 0x1a86,
                                   .pid = 0x7523,
                                   .product = "USB Serial" };
        CHECK_INT(inventory_apply_usb(inv, &ch340), 0);
        CHECK_INT(n_seen, before);
        InventoryTtyInfo tty = { .syspath = "/sys/x/ttyUSB0",
                                 .devnode = "/dev/ttyUSB0",
                                 .usb_port = "1-1.10" };
        CHECK_INT(inventory_apply_tty(inv, &tty), 0);
        CHECK_EVENTS(before + 1, INVENTORY_EVENT_ADDED);
        CHECK_STR(str(seen[n_seen - 1].object, "mode"), "serial");
        CHECK(json_is_null(json_object_get(seen[n_seen - 1].object, "mcu")));

        /* Katapult. */
        InventoryUsbInfo kp = { .syspath = "/sys/devices/usb1/1-1/1-1.2",
                                .port = "1-1.2",
                                .busnum = 1,
                                .devnum = 22,
                                .vid = 0x1d50,
                                .pid = 0x6177,
                                .product = "stm32g0b1xx" };
        CHECK_INT(inventory_apply_usb(inv, &kp), 0);
        const InventoryEntry *e = inventory_get(inv, "1-1.2");
        CHECK(e && e->mode == DEVICE_MODE_KATAPULT);
        CHECK_STR(e->mcu, "stm32g0b1xx");

        CHECK_INT(inventory_count(inv), 3);
}

static void collect_port(const InventoryEntry *e, void *userdata)
{
        json_array_append_new(userdata, json_string(e->port));
}

static void test_order(Inventory *inv)
{
        json_auto_t *ports = json_array();
        inventory_foreach(inv, collect_port, ports);
        /* Port order is numeric: 1-1.2, 1-1.3, 1-1.10. */
        CHECK_INT(json_array_size(ports), 3);
        CHECK_STR(json_string_value(json_array_get(ports, 0)), "1-1.2");
        CHECK_STR(json_string_value(json_array_get(ports, 1)), "1-1.3");
        CHECK_STR(json_string_value(json_array_get(ports, 2)), "1-1.10");
}

static unsigned calls_a, calls_b, calls_c;

static void listener_b(Inventory *inv, InventoryEvent event, const InventoryEntry *e, void *userdata)
{
        calls_b++;
}

static void listener_c(Inventory *inv, InventoryEvent event, const InventoryEntry *e, void *userdata)
{
        calls_c++;
}

/* Removes itself and B, adds C: B is not called any more, C from the next event. */
static void listener_a(Inventory *inv, InventoryEvent event, const InventoryEntry *e, void *userdata)
{
        calls_a++;
        inventory_remove_listener(inv, listener_a, NULL);
        inventory_remove_listener(inv, listener_b, NULL);
        CHECK_INT(inventory_add_listener(inv, listener_c, NULL), 0);
}

static void test_listener_changes_during_event(Inventory *inv)
{
        CHECK_INT(inventory_add_listener(inv, listener_a, NULL), 0);
        CHECK_INT(inventory_add_listener(inv, listener_b, NULL), 0);
        InventoryUsbInfo dev = { .syspath = "/sys/x/1-2",
                                 .port = "1-2",
                                 .busnum = 1,
                                 .devnum = 40,
                                 .vid = 0x1d50,
                                 .pid = 0x614e,
                                 .product = "stm32h723xx" };
        CHECK_INT(inventory_apply_usb(inv, &dev), 0);
        CHECK_INT(calls_a, 1);
        CHECK_INT(calls_b, 0);
        CHECK_INT(calls_c, 0);
        CHECK_INT(inventory_remove_usb(inv, dev.syspath), 1);
        CHECK_INT(calls_a, 1);
        CHECK_INT(calls_b, 0);
        CHECK_INT(calls_c, 1);
        inventory_remove_listener(inv, listener_c, NULL);
}

/* An RP2040 board: Klipper, then the boot ROM in BOOTSEL on the same
 * port (mode, candidates, flash size from the database, the ROM version
 * once probed); an RP2350's ROM is named and matches no board. */
static void test_bootsel(Inventory *inv)
{
        InventoryUsbInfo app = { .syspath = "/sys/devices/usb1/1-1/1-1.20",
                                 .port = "1-1.20",
                                 .busnum = 1,
                                 .devnum = 40,
                                 .vid = 0x1d50,
                                 .pid = 0x614e,
                                 .product = "rp2040" };
        InventoryUsbInfo rom = { .syspath = "/sys/devices/usb1/1-1/1-1.20",
                                 .port = "1-1.20",
                                 .busnum = 1,
                                 .devnum = 41,
                                 .vid = 0x2e8a,
                                 .pid = 0x0003,
                                 .manufacturer = "Raspberry Pi",
                                 .product = "RP2 Boot" };
        InventoryUsbInfo rp2350 = { .syspath = "/sys/devices/usb1/1-1/1-1.21",
                                    .port = "1-1.21",
                                    .busnum = 1,
                                    .devnum = 42,
                                    .vid = 0x2e8a,
                                    .pid = 0x000f };
        const InventoryEntry *e;
        json_t *o;

        CHECK_INT(inventory_apply_usb(inv, &app), 0);
        CHECK(inventory_remove_usb(inv, app.syspath) >= 0);
        CHECK_INT(inventory_apply_usb(inv, &rom), 0);
        e = inventory_get(inv, "1-1.20");
        CHECK(e && e->mode == DEVICE_MODE_BOOTSEL);
        if (!e)
                return;
        CHECK_STR(e->mcu, "rp2040");
        CHECK_INT(e->n_candidates, 2);
        o = seen[n_seen - 1].object;
        CHECK_STR(str(o, "mode"), "bootsel");
        CHECK_STR(str(o, "previous_mcu"), "rp2040");
        CHECK_INT(json_integer_value(json_object_get(o, "flash_size")), 2 * 1024 * 1024);
        CHECK(json_is_null(json_object_get(o, "rom_version")));

        InventoryProbeResult r = { .port = strdup(e->port), .generation = e->generation, .rom_version = 3 };
        CHECK_INT(inventory_apply_probe(inv, &r), 0);
        CHECK_EVENTS(n_seen, INVENTORY_EVENT_CHANGED);
        CHECK_STR(str(seen[n_seen - 1].object, "rom_version"), "B2");

        CHECK_INT(inventory_apply_usb(inv, &rp2350), 0);
        e = inventory_get(inv, "1-1.21");
        CHECK(e && e->mode == DEVICE_MODE_BOOTSEL && e->n_candidates == 0);
        o = seen[n_seen - 1].object;
        CHECK(json_is_null(json_object_get(o, "flash_size")));
        CHECK(strstr(json_string_value(json_array_get(json_object_get(o, "diagnostics"), 0)) ?: "",
                     "RP2350"));
}

static void test_bridge(Inventory *inv)
{
        /* candleLight's id with a serial that is not a chip id: an adapter,
         * not a board */
        InventoryUsbInfo adapter = { .syspath = "/sys/devices/usb1/1-1/1-1.30",
                                     .port = "1-1.30",
                                     .busnum = 1,
                                     .devnum = 40,
                                     .vid = 0x1d50,
                                     .pid = 0x606f,
                                     .serial = "candle-7" };
        CHECK_INT(inventory_apply_usb(inv, &adapter), 0);
        CHECK(inventory_get(inv, "1-1.30") == NULL);

        InventoryUsbInfo bridge = { .syspath = "/sys/devices/usb1/1-1/1-1.31",
                                    .port = "1-1.31",
                                    .busnum = 1,
                                    .devnum = 41,
                                    .vid = 0x1d50,
                                    .pid = 0x606f,
                                    .manufacturer = "Klipper",
                                    .product = "stm32h723xx",
                                    .serial = "240033000F51333136363530" };
        CHECK_INT(inventory_apply_usb(inv, &bridge), 0);
        const InventoryEntry *e = inventory_get(inv, "1-1.31");
        CHECK(e && e->mode == DEVICE_MODE_APP);
        json_t *o = seen[n_seen - 1].object;
        CHECK_STR(str(o, "port"), "1-1.31");
        json_t *b = json_object_get(o, "bridge");
        CHECK(json_is_object(b));
        /* the UUID of this chip id, as in test-can-proto */
        CHECK_STR(str(b, "uuid"), "b833c06d9066");
        CHECK(json_is_null(json_object_get(b, "interface")));

        /* its interface appears below it: linked to the port */
        InventoryCanInfo can = { .syspath = "/sys/devices/usb1/1-1/1-1.31/1-1.31:1.0/net/can0",
                                 .name = "can0",
                                 .usb_port = "1-1.31" };
        CHECK_INT(inventory_apply_can(inv, &can), 0);
        CHECK_EVENTS(n_seen, INVENTORY_EVENT_CHANGED);
        o = seen[n_seen - 1].object;
        CHECK_STR(str(json_object_get(o, "bridge"), "interface"), "can0");
        CHECK_STR(str(o, "can_interface"), "can0");

        /* rebooting into the bootloader: the interface goes first */
        CHECK_INT(inventory_remove_can(inv, can.syspath), 1);
        o = seen[n_seen - 1].object;
        CHECK(json_is_null(json_object_get(json_object_get(o, "bridge"), "interface")));
        CHECK_INT(inventory_remove_usb(inv, bridge.syspath), 1);
        CHECK(inventory_get(inv, "1-1.31") == NULL);

        /* other devices carry no bridge */
        e = inventory_get(inv, "1-1.2");
        CHECK(e != NULL);
        o = inventory_entry_to_json(e);
        CHECK(json_is_null(json_object_get(o, "bridge")));
        json_decref(o);
}

static void test_strings(void)
{
        for (int m = 0; m < _DEVICE_MODE_MAX; m++)
                CHECK_INT(device_mode_from_string(device_mode_to_string(m)), m);
        CHECK_INT(device_mode_from_string("bogus"), _DEVICE_MODE_INVALID);
        for (int e = 0; e < _INVENTORY_EVENT_MAX; e++)
                CHECK(inventory_event_to_string(e) != NULL);
}

int main(void)
{
        const char *dir = getenv("FLASHD_BOARDS_DIR") ?: FLASHD_SOURCE_BOARDS_DIR;
        const char *dirs[] = { dir, NULL };
        BoardDb *db = NULL;
        Inventory *inv = NULL;
        char *error = NULL;

        CHECK_INT(board_db_load(&db, dirs, &error), 0);
        if (!db) {
                fprintf(stderr, "board db: %s\n", error);
                return EXIT_FAILURE;
        }
        CHECK_INT(inventory_new(&inv, NULL, db), 0);
        inventory_set_probe_enabled(inv, false);
        CHECK_INT(inventory_add_listener(inv, on_event, seen), 0);

        test_lifecycle(inv);
        test_layout_short_and_unknown(inv);
        test_other_devices(inv);
        test_order(inv);
        test_listener_changes_during_event(inv);
        test_bootsel(inv);
        test_bridge(inv);
        test_strings();

        inventory_remove_listener(inv, on_event, seen);
        reset_seen();
        inventory_free(inv);
        board_db_free(db);
        TESTS_EXIT();
}
