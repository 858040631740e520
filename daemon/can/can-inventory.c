/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <libudev.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "can/can-inventory.h"
#include "can/can-transport.h"
#include "util/log.h"

/* How often the interfaces are queried while there are any (udev's net
 * events say when one comes or goes); a node that missed this many queries
 * in a row is no longer listed as answering. */
#define CAN_INVENTORY_INTERVAL_USEC (2u * 1000u * 1000u)
#define CAN_INVENTORY_MISSES        3
#define CAN_INVENTORY_MAX_IFACES    8
#define CAN_INVENTORY_MAX_NODES     64

typedef struct CanIface {
        CanInventory *ci;
        char name[16];
        CanTransport *t;
        sd_event_source *io;
        bool seen; /* in the last udev enumeration */
} CanIface;

typedef struct CanNodeEntry {
        char iface[16];
        CanUuid uuid;
        CanApp app;
        bool remembered; /* named by the user */
        char name[64];   /* printer.cfg's [mcu NAME], or "" */
        unsigned misses; /* queries since the last answer; UINT_MAX never answered */
} CanNodeEntry;

struct CanInventory {
        sd_event *event;
        sd_event_source *timer;
        struct udev *udev;
        struct udev_monitor *monitor; /* net devices coming and going */
        sd_event_source *monitor_io;
        CanIface ifaces[CAN_INVENTORY_MAX_IFACES];
        size_t n_ifaces;
        CanNodeEntry nodes[CAN_INVENTORY_MAX_NODES];
        size_t n_nodes;
};

static CanNodeEntry *node_get(CanInventory *ci, const char *iface, const CanUuid *uuid, bool create)
{
        for (size_t i = 0; i < ci->n_nodes; i++)
                if (streq(ci->nodes[i].iface, iface) && can_uuid_equal(&ci->nodes[i].uuid, uuid))
                        return &ci->nodes[i];
        if (!create || ci->n_nodes >= CAN_INVENTORY_MAX_NODES)
                return NULL;
        CanNodeEntry *n = &ci->nodes[ci->n_nodes++];
        *n = (CanNodeEntry){ .uuid = *uuid, .misses = UINT32_MAX };
        snprintf(n->iface, sizeof(n->iface), "%s", iface);
        return n;
}

static void iface_close(CanIface *f)
{
        f->io = sd_event_source_disable_unref(f->io);
        f->t = can_transport_free(f->t);
}

static int on_answer(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        CanIface *f = userdata;
        CanNodeAnswer a;
        int r;

        while ((r = can_transport_next_answer(f->t, &a)) > 0) {
                CanNodeEntry *n = node_get(f->ci, f->name, &a.uuid, true);
                if (!n)
                        continue;
                if (n->misses == UINT32_MAX || n->app != a.app) {
                        char u[13];
                        log_info("CAN node %s:%s answers as %s", f->name, can_uuid_format(&a.uuid, u),
                                 can_app_to_string(a.app));
                }
                n->app = a.app;
                n->misses = 0;
        }
        if (r < 0) {
                log_info("CAN interface %s: %s; closed until it is back", f->name, strerror(-r));
                iface_close(f);
        }
        return 0;
}

static CanIface *iface_get(CanInventory *ci, const char *name)
{
        for (size_t i = 0; i < ci->n_ifaces; i++)
                if (streq(ci->ifaces[i].name, name))
                        return &ci->ifaces[i];
        if (ci->n_ifaces >= CAN_INVENTORY_MAX_IFACES)
                return NULL;
        CanIface *f = &ci->ifaces[ci->n_ifaces++];
        *f = (CanIface){ .ci = ci };
        snprintf(f->name, sizeof(f->name), "%s", name);
        log_info("CAN interface %s found", name);
        return f;
}

/* udev's view: net devices of type 280 (ARPHRD_CAN). */
static void enumerate(CanInventory *ci)
{
        struct udev_enumerate *e;
        struct udev_list_entry *l;

        for (size_t i = 0; i < ci->n_ifaces; i++)
                ci->ifaces[i].seen = false;
        e = udev_enumerate_new(ci->udev);
        if (!e)
                return;
        udev_enumerate_add_match_subsystem(e, "net");
        udev_enumerate_add_match_sysattr(e, "type", "280");
        if (udev_enumerate_scan_devices(e) >= 0)
                udev_list_entry_foreach (l, udev_enumerate_get_list_entry(e)) {
                        struct udev_device *d =
                                udev_device_new_from_syspath(ci->udev, udev_list_entry_get_name(l));
                        const char *name = d ? udev_device_get_sysname(d) : NULL;
                        CanIface *f = name ? iface_get(ci, name) : NULL;
                        if (f)
                                f->seen = true;
                        udev_device_unref(d);
                }
        udev_enumerate_unref(e);
        for (size_t i = 0; i < ci->n_ifaces; i++)
                if (!ci->ifaces[i].seen)
                        iface_close(&ci->ifaces[i]);
}

static void query(CanInventory *ci)
{
        uint8_t d[CAN_DATA_MAX];

        for (size_t i = 0; i < ci->n_nodes; i++)
                if (ci->nodes[i].misses != UINT32_MAX)
                        ci->nodes[i].misses++;
        for (size_t i = 0; i < ci->n_ifaces; i++) {
                CanIface *f = &ci->ifaces[i];
                int r;
                if (!f->seen)
                        continue;
                if (!f->t) {
                        r = can_transport_open(&f->t, f->name);
                        if (r < 0)
                                continue; /* down, or no AF_CAN: the next round tries again */
                        r = sd_event_add_io(ci->event, &f->io, can_transport_get_fd(f->t), EPOLLIN,
                                            on_answer, f);
                        if (r < 0) {
                                f->t = can_transport_free(f->t);
                                continue;
                        }
                }
                /* a down interface or a full queue: listed nodes age out */
                (void)can_transport_admin(f->t, d, can_admin_encode_query(d), 0);
        }
}

static bool any_iface(const CanInventory *ci)
{
        for (size_t i = 0; i < ci->n_ifaces; i++)
                if (ci->ifaces[i].seen)
                        return true;
        return false;
}

/* Look and ask now; the timer runs only while there is an interface to
 * ask, so a printer without CAN costs no wakeup. */
static void refresh(CanInventory *ci)
{
        enumerate(ci);
        query(ci);
        (void)sd_event_source_set_time_relative(ci->timer, CAN_INVENTORY_INTERVAL_USEC);
        (void)sd_event_source_set_enabled(ci->timer, any_iface(ci) ? SD_EVENT_ONESHOT : SD_EVENT_OFF);
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
        refresh(userdata);
        return 0;
}

static int on_net_event(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        CanInventory *ci = userdata;
        bool can = false;

        /* drain what is queued; the fd is non-blocking */
        for (int i = 0; i < 64; i++) {
                struct udev_device *d = udev_monitor_receive_device(ci->monitor);
                if (!d)
                        break;
                can |= streq_ptr(udev_device_get_sysattr_value(d, "type"), "280") ||
                       streq_ptr(udev_device_get_action(d), "remove");
                udev_device_unref(d);
        }
        if (can)
                refresh(ci);
        return 0;
}

static int watch_net(CanInventory *ci)
{
        int r;

        ci->monitor = udev_monitor_new_from_netlink(ci->udev, "udev");
        if (!ci->monitor)
                return -errno ?: -ENOMEM;
        r = udev_monitor_filter_add_match_subsystem_devtype(ci->monitor, "net", NULL);
        if (r >= 0)
                r = udev_monitor_enable_receiving(ci->monitor);
        if (r >= 0)
                r = sd_event_add_io(ci->event, &ci->monitor_io, udev_monitor_get_fd(ci->monitor), EPOLLIN,
                                    on_net_event, ci);
        return r;
}

int can_inventory_new(CanInventory **ret, sd_event *event)
{
        CanInventory *ci = calloc(1, sizeof(*ci));

        if (!ci)
                return -ENOMEM;
        ci->event = sd_event_ref(event);
        ci->udev = udev_new();
        if (!ci->udev) {
                can_inventory_free(ci);
                return -ENOMEM;
        }
        *ret = ci;
        return 0;
}

CanInventory *can_inventory_free(CanInventory *ci)
{
        if (!ci)
                return NULL;
        for (size_t i = 0; i < ci->n_ifaces; i++)
                iface_close(&ci->ifaces[i]);
        sd_event_source_disable_unref(ci->timer);
        sd_event_source_disable_unref(ci->monitor_io);
        udev_monitor_unref(ci->monitor);
        udev_unref(ci->udev);
        sd_event_unref(ci->event);
        free(ci);
        return NULL;
}

int can_inventory_start(CanInventory *ci)
{
        int r;

        r = watch_net(ci);
        if (r < 0)
                return r;
        r = sd_event_add_time_relative(ci->event, &ci->timer, CLOCK_MONOTONIC, CAN_INVENTORY_INTERVAL_USEC,
                                       0, on_timer, ci);
        if (r < 0)
                return r;
        refresh(ci);
        return 0;
}

int can_inventory_remember(CanInventory *ci, const char *iface, const CanUuid *uuid)
{
        CanNodeEntry *n = node_get(ci, iface, uuid, true);
        if (!n)
                return -ENOSPC;
        n->remembered = true;
        return 0;
}

int can_inventory_load_printer_cfg(CanInventory *ci, const char *path)
{
        KlipperCanMcu mcus[CAN_INVENTORY_MAX_NODES];
        _cleanup_free_ char *text = NULL;
        size_t len = 0, n;
        FILE *f = fopen(path, "re");

        if (!f)
                return -errno;
        /* printer.cfg is small; a huge file is not one */
        text = malloc(1024 * 1024);
        if (text)
                len = fread(text, 1, 1024 * 1024, f);
        fclose(f);
        if (!text)
                return -ENOMEM;
        n = klipper_cfg_can_mcus(text, len, mcus, ELEMENTSOF(mcus));
        for (size_t i = 0; i < n; i++) {
                CanNodeEntry *e = node_get(ci, mcus[i].iface, &mcus[i].uuid, true);
                if (!e)
                        return -ENOSPC;
                e->remembered = true;
                snprintf(e->name, sizeof(e->name), "%s", mcus[i].name);
        }
        return (int)n;
}

int can_inventory_resolve(CanInventory *ci, const char *name, char *buf, size_t size)
{
        for (size_t i = 0; i < ci->n_nodes; i++)
                if (ci->nodes[i].name[0] && streq(ci->nodes[i].name, name)) {
                        char u[13];
                        snprintf(buf, size, "%s:%s", ci->nodes[i].iface,
                                 can_uuid_format(&ci->nodes[i].uuid, u));
                        return 0;
                }
        return -ENOENT;
}

int can_inventory_append_json(CanInventory *ci, json_t *array)
{
        for (size_t i = 0; i < ci->n_nodes; i++) {
                CanNodeEntry *n = &ci->nodes[i];
                bool answering = n->misses != UINT32_MAX && n->misses <= CAN_INVENTORY_MISSES;
                char u[13], port[32];

                if (!answering && !n->remembered)
                        continue;
                can_uuid_format(&n->uuid, u);
                snprintf(port, sizeof(port), "%s:%s", n->iface, u);
                json_t *o =
                        json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:b,s:n,s:n,s:o}", "id", port, "port", port,
                                  "transport", "can", "interface", n->iface, "uuid", u, "mode",
                                  answering ? can_app_to_string(n->app) : "assigned", "present", answering,
                                  "mcu", "board", "name", n->name[0] ? json_string(n->name) : json_null());
                if (!o || json_array_append_new(array, o) < 0)
                        return -ENOMEM;
        }
        return 0;
}
