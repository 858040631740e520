/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "inventory/inventory-internal.h"
#include "util/log.h"
#include "util/macros.h"
#include "util/time-util.h"

/* USB ids that name a mode by themselves (notes/protocols.md). */
#define USB_ID(v, p)     (((uint32_t)(v) << 16) | (uint32_t)(p))
#define USB_ID_KLIPPER   USB_ID(0x1d50, 0x614e)
#define USB_ID_STM32_DFU USB_ID(0x0483, 0xdf11)
#define USB_ID_KATAPULT  USB_ID(0x1d50, 0x6177)
/* candleLight's id, which Klipper's USB-to-CAN bridge mode reuses */
#define USB_ID_GS_USB USB_ID(0x1d50, 0x606f)
/* RP2040 datasheet 2.8.4; RP2350's ROM, refused by the session by name */
#define USB_ID_RP2040_BOOTSEL USB_ID(0x2e8a, 0x0003)
#define USB_ID_RP2350_BOOTSEL USB_ID(0x2e8a, 0x000f)

typedef struct Listener {
        InventoryListener cb;
        void *userdata;
} Listener;

struct Inventory {
        sd_event *event;
        const BoardDb *boards;
        /* sorted by port; includes remembered ports with no device present */
        InventoryEntry **entries;
        size_t n_entries;
        /* last JSON reported for each entry, parallel to entries[] */
        Listener *listeners;
        size_t n_listeners;
        unsigned emitting; /* > 0 while listeners are being called */
        uint64_t changes;  /* events emitted so far: what answers built from entries depend on */
        bool probe_enabled;
        InventoryUdev *udev;
        InventoryProber *prober;
};

static const char *const device_mode_table[_DEVICE_MODE_MAX] = {
        [DEVICE_MODE_APP] = "app",           [DEVICE_MODE_DFU] = "dfu",
        [DEVICE_MODE_KATAPULT] = "katapult", [DEVICE_MODE_SERIAL] = "serial",
        [DEVICE_MODE_UNKNOWN] = "unknown",   [DEVICE_MODE_BOOTSEL] = "bootsel",
};

const char *device_mode_to_string(DeviceMode m)
{
        if (m < 0 || m >= _DEVICE_MODE_MAX)
                return NULL;
        return device_mode_table[m];
}

DeviceMode device_mode_from_string(const char *s)
{
        return (DeviceMode)string_table_lookup(device_mode_table, _DEVICE_MODE_MAX, s);
}

const char *inventory_event_to_string(InventoryEvent e)
{
        static const char *const table[_INVENTORY_EVENT_MAX] = {
                [INVENTORY_EVENT_ADDED] = "added",
                [INVENTORY_EVENT_CHANGED] = "changed",
                [INVENTORY_EVENT_REMOVED] = "removed",
        };
        if (e < 0 || e >= _INVENTORY_EVENT_MAX)
                return NULL;
        return table[e];
}

void inventory_alt_clear(InventoryAlt *a)
{
        free(a->name);
        dfuse_layout_free(a->layout);
        free(a->diagnostic);
        *a = (InventoryAlt){};
}

static void entry_clear_alts(InventoryEntry *e)
{
        for (size_t i = 0; i < e->n_alts; i++)
                inventory_alt_clear(&e->alts[i]);
        free(e->alts);
        e->alts = NULL;
        e->n_alts = 0;
        e->transfer_size = 0;
        e->rom_version = 0;
        e->probed = false;
        free(e->probe_diagnostic);
        e->probe_diagnostic = NULL;
}

static void entry_clear_usb(InventoryEntry *e)
{
        free(e->usb_syspath);
        free(e->usb_devnode);
        free(e->manufacturer);
        free(e->product);
        free(e->serial);
        e->usb_syspath = e->usb_devnode = e->manufacturer = e->product = e->serial = NULL;
        e->busnum = e->devnum = 0;
        e->vid = e->pid = 0;
        e->has_dfu_interface = false;
        e->present = false;
        /* A probe still running belongs to the old device: its result is
         * dropped by generation, and the new device gets its own probe. */
        e->probing = false;
        entry_clear_alts(e);
}

static void entry_clear_tty(InventoryEntry *e)
{
        free(e->tty_syspath);
        free(e->tty);
        free(e->by_id);
        e->tty_syspath = e->tty = e->by_id = NULL;
}

static void entry_clear_can(InventoryEntry *e)
{
        free(e->can_syspath);
        free(e->can_iface);
        e->can_syspath = e->can_iface = NULL;
}

static InventoryEntry *entry_free(InventoryEntry *e)
{
        if (!e)
                return NULL;
        entry_clear_usb(e);
        entry_clear_tty(e);
        entry_clear_can(e);
        free(e->can_iface_last);
        inventory_entry_clear_identity(e);
        free(e->last_mcu);
        free(e->firmware_version);
        free(e->firmware_mcu);
        free(e->firmware_source);
        json_decref(e->reported);
        free(e->port);
        free(e);
        return NULL;
}

int inventory_new(Inventory **ret, sd_event *event, const BoardDb *boards)
{
        Inventory *inv = calloc(1, sizeof(*inv));
        if (!inv)
                return -ENOMEM;
        inv->event = event ? sd_event_ref(event) : NULL;
        inv->boards = boards;
        inv->probe_enabled = true;
        *ret = inv;
        return 0;
}

Inventory *inventory_free(Inventory *inv)
{
        if (!inv)
                return NULL;
        inv->udev = inventory_udev_free(inv->udev);
        /* Joins running probe threads (bounded by their USB timeouts). */
        inv->prober = inventory_prober_free(inv->prober);
        for (size_t i = 0; i < inv->n_entries; i++)
                entry_free(inv->entries[i]);
        free(inv->entries);
        free(inv->listeners);
        sd_event_unref(inv->event);
        free(inv);
        return NULL;
}

void inventory_set_probe_enabled(Inventory *inv, bool enabled)
{
        inv->probe_enabled = enabled;
}

int inventory_start(Inventory *inv)
{
        int r;

        if (!inv->event)
                return -EINVAL;
        r = inventory_prober_new(&inv->prober, inv, inv->event);
        if (r < 0)
                return r;
        return inventory_udev_start(&inv->udev, inv, inv->event);
}

int inventory_add_listener(Inventory *inv, InventoryListener cb, void *userdata)
{
        Listener *l = realloc(inv->listeners, (inv->n_listeners + 1) * sizeof(Listener));
        if (!l)
                return -ENOMEM;
        inv->listeners = l;
        l[inv->n_listeners++] = (Listener){ cb, userdata };
        return 0;
}

void inventory_remove_listener(Inventory *inv, InventoryListener cb, void *userdata)
{
        for (size_t i = 0; i < inv->n_listeners; i++)
                if (inv->listeners[i].cb == cb && inv->listeners[i].userdata == userdata) {
                        /* While emitting, only mark it: the loop is indexing the array. */
                        if (inv->emitting > 0) {
                                inv->listeners[i].cb = NULL;
                                return;
                        }
                        memmove(inv->listeners + i, inv->listeners + i + 1,
                                (inv->n_listeners - i - 1) * sizeof(Listener));
                        inv->n_listeners--;
                        return;
                }
}

static void inventory_emit(Inventory *inv, InventoryEvent event, const InventoryEntry *e)
{
        log_info("device %s %s: %s %04x:%04x %s%s%s", e->port, inventory_event_to_string(event),
                 device_mode_to_string(e->mode), e->vid, e->pid, strempty(e->product),
                 e->board ? " board " : "", e->board ? e->board->name : "");

        inv->changes++;
        /* Listeners added meanwhile hear from the next event on; the array
         * may move (realloc), so it is indexed afresh every time. */
        size_t n = inv->n_listeners;
        inv->emitting++;
        for (size_t i = 0; i < n; i++) {
                Listener l = inv->listeners[i];
                if (l.cb)
                        l.cb(inv, event, e, l.userdata);
        }
        if (--inv->emitting == 0) {
                size_t k = 0;
                for (size_t i = 0; i < inv->n_listeners; i++)
                        if (inv->listeners[i].cb)
                                inv->listeners[k++] = inv->listeners[i];
                inv->n_listeners = k;
        }
}

static int port_cmp(const char *a, const char *b)
{
        /* "1-1.10" after "1-1.9": compare digit runs as numbers. */
        while (*a && *b) {
                if (*a >= '0' && *a <= '9' && *b >= '0' && *b <= '9') {
                        char *ea, *eb;
                        unsigned long x = strtoul(a, &ea, 10), y = strtoul(b, &eb, 10);
                        if (x != y)
                                return x < y ? -1 : 1;
                        a = ea;
                        b = eb;
                        continue;
                }
                if (*a != *b)
                        return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
                a++;
                b++;
        }
        return (unsigned char)*a - (unsigned char)*b;
}

static InventoryEntry *inventory_lookup(const Inventory *inv, const char *port)
{
        for (size_t i = 0; i < inv->n_entries; i++)
                if (streq(inv->entries[i]->port, port))
                        return inv->entries[i];
        return NULL;
}

static int inventory_ensure(Inventory *inv, const char *port, InventoryEntry **ret)
{
        InventoryEntry *e = inventory_lookup(inv, port);
        if (e) {
                *ret = e;
                return 0;
        }
        InventoryEntry **l = realloc(inv->entries, (inv->n_entries + 1) * sizeof(*l));
        if (!l)
                return -ENOMEM;
        inv->entries = l;
        e = calloc(1, sizeof(*e));
        if (!e)
                return -ENOMEM;
        e->port = strdup(port);
        if (!e->port) {
                free(e);
                return -ENOMEM;
        }
        e->mode = DEVICE_MODE_UNKNOWN;
        size_t i = inv->n_entries;
        while (i > 0 && port_cmp(l[i - 1]->port, port) > 0) {
                l[i] = l[i - 1];
                i--;
        }
        l[i] = e;
        inv->n_entries++;
        *ret = e;
        return 0;
}

bool inventory_entry_bridge_uuid(const InventoryEntry *e, CanUuid *ret)
{
        CanUuid u;

        /* Klipper in USB-to-CAN bridge mode is a gs_usb device whose serial
         * is the chip id its CAN UUID is hashed from; an adapter's serial
         * that is not hex is no Klipper's */
        if (!e->present || USB_ID(e->vid, e->pid) != USB_ID_GS_USB || !e->serial ||
            can_uuid_from_usb_serial(e->serial, &u) < 0)
                return false;
        if (ret)
                *ret = u;
        return true;
}

static DeviceMode entry_compute_mode(const InventoryEntry *e)
{
        if (inventory_entry_bridge_uuid(e, NULL))
                return DEVICE_MODE_APP;
        switch (USB_ID(e->vid, e->pid)) {
        case USB_ID_KLIPPER:
                return DEVICE_MODE_APP;
        case USB_ID_STM32_DFU:
                return DEVICE_MODE_DFU;
        case USB_ID_KATAPULT:
                return DEVICE_MODE_KATAPULT;
        case USB_ID_RP2040_BOOTSEL:
        case USB_ID_RP2350_BOOTSEL:
                return DEVICE_MODE_BOOTSEL;
        }
        if (e->has_dfu_interface)
                return DEVICE_MODE_DFU;
        if (e->tty)
                return DEVICE_MODE_SERIAL;
        return DEVICE_MODE_UNKNOWN;
}

static bool entry_known_to_db(const InventoryEntry *e, const BoardDb *db)
{
        const BoardVariant *v[1];
        const Board *b[1];
        return db && board_db_match_usb(db, e->vid, e->pid, v, b, 1) > 0;
}

/*
 * Recompute mode and identity, then tell listeners what changed compared
 * with what they last heard (the JSON object is the yardstick, so any
 * visible difference is a "changed" and nothing else is).
 */
static void inventory_update(Inventory *inv, InventoryEntry *e)
{
        e->mode = entry_compute_mode(e);
        inventory_entry_identify(e, inv->boards);

        bool was_visible = e->visible;
        /* A keyboard or a hub is not our business; everything a board
         * could be, or that the board database names, is. */
        e->visible = e->present && (e->mode != DEVICE_MODE_UNKNOWN || entry_known_to_db(e, inv->boards));

        if (e->visible && (e->mode == DEVICE_MODE_DFU || e->mode == DEVICE_MODE_BOOTSEL) && !e->probed &&
            !e->probing && inv->probe_enabled && inv->prober) {
                int r = inventory_prober_start(inv->prober, e);
                if (r < 0)
                        log_warning_errno(r, "device %s: cannot start the DFU probe: %m", e->port);
                else
                        e->probing = true;
        }

        if (!e->visible) {
                if (was_visible)
                        inventory_emit(inv, INVENTORY_EVENT_REMOVED, e);
                json_decref(e->reported);
                e->reported = NULL;
                return;
        }

        json_t *now = inventory_entry_to_json(e);
        if (!now) {
                log_oom();
                return;
        }
        if (!was_visible) {
                json_decref(e->reported);
                e->reported = now;
                inventory_emit(inv, INVENTORY_EVENT_ADDED, e);
        } else if (!e->reported || !json_equal(e->reported, now)) {
                json_decref(e->reported);
                e->reported = now;
                inventory_emit(inv, INVENTORY_EVENT_CHANGED, e);
        } else
                json_decref(now);
}

static int set_str(char **field, const char *value)
{
        if (streq_ptr(*field, value))
                return 0;
        char *s = NULL;
        if (value && !(s = strdup(value)))
                return -ENOMEM;
        free(*field);
        *field = s;
        return 0;
}

int inventory_apply_usb(Inventory *inv, const InventoryUsbInfo *info)
{
        InventoryEntry *e;
        int r;

        if (!info->port || !info->syspath)
                return -EINVAL;
        r = inventory_ensure(inv, info->port, &e);
        if (r < 0)
                return r;

        bool new_device = !e->present || !streq_ptr(e->usb_syspath, info->syspath) ||
                          e->devnum != info->devnum || e->busnum != info->busnum;
        if (new_device) {
                /* Re-enumerated (app -> dfu, or a power cycle): same port, new device. */
                if (e->mcu)
                        set_str(&e->last_mcu, e->mcu);
                entry_clear_usb(e);
                e->generation++;
                e->since_usec = now_usec(CLOCK_REALTIME);
        }
        e->present = true;
        e->busnum = info->busnum;
        e->devnum = info->devnum;
        e->vid = info->vid;
        e->pid = info->pid;
        e->has_dfu_interface = info->has_dfu_interface;
        if (set_str(&e->usb_syspath, info->syspath) < 0 || set_str(&e->usb_devnode, info->devnode) < 0 ||
            set_str(&e->manufacturer, info->manufacturer) < 0 || set_str(&e->product, info->product) < 0 ||
            set_str(&e->serial, info->serial) < 0)
                return -ENOMEM;
        inventory_update(inv, e);
        return 0;
}

int inventory_remove_usb(Inventory *inv, const char *syspath)
{
        for (size_t i = 0; i < inv->n_entries; i++) {
                InventoryEntry *e = inv->entries[i];
                if (!streq_ptr(e->usb_syspath, syspath))
                        continue;
                /* Listeners hear about the removal with the last state seen. */
                if (e->visible) {
                        e->visible = false;
                        inventory_emit(inv, INVENTORY_EVENT_REMOVED, e);
                }
                if (e->mcu)
                        set_str(&e->last_mcu, e->mcu);
                entry_clear_usb(e);
                entry_clear_tty(e);
                entry_clear_can(e);
                e->generation++;
                inventory_update(inv, e);
                return 1;
        }
        return 0;
}

int inventory_apply_tty(Inventory *inv, const InventoryTtyInfo *info)
{
        InventoryEntry *e;
        int r;

        if (!info->usb_port || !info->syspath)
                return -EINVAL;
        r = inventory_ensure(inv, info->usb_port, &e);
        if (r < 0)
                return r;
        if (set_str(&e->tty_syspath, info->syspath) < 0 || set_str(&e->tty, info->devnode) < 0 ||
            set_str(&e->by_id, info->by_id) < 0)
                return -ENOMEM;
        inventory_update(inv, e);
        return 0;
}

int inventory_remove_tty(Inventory *inv, const char *syspath)
{
        for (size_t i = 0; i < inv->n_entries; i++) {
                InventoryEntry *e = inv->entries[i];
                if (!streq_ptr(e->tty_syspath, syspath))
                        continue;
                entry_clear_tty(e);
                inventory_update(inv, e);
                return 1;
        }
        return 0;
}

int inventory_apply_can(Inventory *inv, const InventoryCanInfo *info)
{
        InventoryEntry *e;
        int r;

        if (!info->usb_port || !info->syspath || !info->name)
                return -EINVAL;
        r = inventory_ensure(inv, info->usb_port, &e);
        if (r < 0)
                return r;
        if (set_str(&e->can_syspath, info->syspath) < 0 || set_str(&e->can_iface, info->name) < 0 ||
            set_str(&e->can_iface_last, info->name) < 0)
                return -ENOMEM;
        inventory_update(inv, e);
        return 0;
}

int inventory_remove_can(Inventory *inv, const char *syspath)
{
        for (size_t i = 0; i < inv->n_entries; i++) {
                InventoryEntry *e = inv->entries[i];
                if (!streq_ptr(e->can_syspath, syspath))
                        continue;
                entry_clear_can(e);
                inventory_update(inv, e);
                return 1;
        }
        return 0;
}

void inventory_probe_result_clear(InventoryProbeResult *r)
{
        free(r->port);
        free(r->diagnostic);
        for (size_t i = 0; i < r->n_alts; i++)
                inventory_alt_clear(&r->alts[i]);
        free(r->alts);
        *r = (InventoryProbeResult){};
}

int inventory_apply_probe(Inventory *inv, InventoryProbeResult *r)
{
        InventoryEntry *e = r->port ? inventory_lookup(inv, r->port) : NULL;

        if (!e || e->generation != r->generation) {
                /* The device went away (or re-enumerated) while we read it. */
                inventory_probe_result_clear(r);
                return 0;
        }
        e->probing = false;
        entry_clear_alts(e);
        e->probed = true;
        e->alts = TAKE_PTR(r->alts);
        e->n_alts = r->n_alts;
        r->n_alts = 0;
        e->transfer_size = r->transfer_size;
        e->rom_version = r->rom_version;
        if (r->error < 0)
                log_warning_errno(r->error, "device %s: probing the %s failed: %s", e->port,
                                  e->mode == DEVICE_MODE_BOOTSEL ? "RP2040 boot ROM" : "DFU descriptors",
                                  strna(r->diagnostic));
        e->probe_diagnostic = TAKE_PTR(r->diagnostic);
        inventory_probe_result_clear(r);
        inventory_update(inv, e);
        return 0;
}

static int set_string(char **p, const char *v)
{
        char *n = NULL;
        if (v && !(n = strdup(v)))
                return -ENOMEM;
        free(*p);
        *p = n;
        return 0;
}

int inventory_set_firmware(Inventory *inv, const char *port, uint64_t generation, const char *version,
                           const char *mcu, const char *source)
{
        InventoryEntry *e = port ? inventory_lookup(inv, port) : NULL;
        int r;

        if (!e || e->generation != generation)
                return 0; /* gone or re-enumerated while it was asked */
        if ((r = set_string(&e->firmware_version, version)) < 0 ||
            (r = set_string(&e->firmware_mcu, mcu)) < 0 || (r = set_string(&e->firmware_source, source)) < 0)
                return r;
        e->firmware_generation = generation;
        inventory_update(inv, e);
        return 0;
}

uint64_t inventory_changes(const Inventory *inv)
{
        return inv ? inv->changes : 0;
}

size_t inventory_count(const Inventory *inv)
{
        size_t n = 0;
        for (size_t i = 0; i < inv->n_entries; i++)
                if (inv->entries[i]->visible)
                        n++;
        return n;
}

const InventoryEntry *inventory_get(const Inventory *inv, const char *port)
{
        const InventoryEntry *e = inventory_lookup(inv, port);
        return e && e->visible ? e : NULL;
}

void inventory_foreach(const Inventory *inv, void (*f)(const InventoryEntry *e, void *userdata),
                       void *userdata)
{
        for (size_t i = 0; i < inv->n_entries; i++)
                if (inv->entries[i]->visible)
                        f(inv->entries[i], userdata);
}

static bool entry_matches_key(const InventoryEntry *e, const char *key)
{
        return streq(e->port, key) || streq_ptr(e->tty, key) || streq_ptr(e->by_id, key) ||
               streq_ptr(e->usb_devnode, key);
}

/* A board name, or "board/variant" as a candidate is printed. */
static bool entry_matches_board(const InventoryEntry *e, const char *key)
{
        const char *slash = strchr(key, '/');
        size_t n = slash ? (size_t)(slash - key) : strlen(key);

        if (n == 0)
                return false;
        for (size_t i = 0; i < e->n_candidates; i++) {
                const char *name = e->candidates[i].board->name;
                if (strlen(name) == n && strncmp(name, key, n) == 0 &&
                    (!slash || streq_ptr(e->candidates[i].variant->id, slash + 1)))
                        return true;
        }
        return false;
}

int inventory_find(const Inventory *inv, const char *key, const InventoryEntry **ret,
                   const InventoryEntry ***ret_matches)
{
        for (size_t i = 0; i < inv->n_entries; i++)
                if (inv->entries[i]->visible && entry_matches_key(inv->entries[i], key)) {
                        *ret = inv->entries[i];
                        return 0;
                }

        /* A board name: only when exactly one present device can be that board. */
        const InventoryEntry **matches = calloc(inv->n_entries + 1, sizeof(*matches));
        size_t n = 0;
        if (!matches)
                return -ENOMEM;
        for (size_t i = 0; i < inv->n_entries; i++)
                if (inv->entries[i]->visible && entry_matches_board(inv->entries[i], key))
                        matches[n++] = inv->entries[i];
        if (n == 0) {
                free(matches);
                return -ENODEV;
        }
        if (n > 1) {
                if (ret_matches)
                        *ret_matches = matches;
                else
                        free(matches);
                return -ENOTUNIQ;
        }
        *ret = matches[0];
        free(matches);
        return 0;
}
