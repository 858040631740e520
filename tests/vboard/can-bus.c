/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "can-bus.h"
#include "can-wire.h"
#include "config.h"

typedef struct CanClient {
        CanBus *bus;
        int fd;
        guint source;
        int ifindex; /* -1 unbound, 0 every interface */
        unsigned n_filters;
        struct can_filter filters[VCAN_MAX_FILTERS];
} CanClient;

struct CanBus {
        World *world;
        char *dir;
        char *socket_path;
        char *state_path;
        VcanState *state;
        char *syspaths[VCAN_MAX_IFACES];
        int listen_fd;
        guint listen_source;
        GPtrArray *clients;
        uint64_t frames, dropped;
};

static CanBus *the_bus;

static CanBus *bus_get(World *w)
{
        CanBus *bus;
        int fd;

        if (the_bus)
                return the_bus;
        bus = g_new0(CanBus, 1);
        bus->world = w;
        bus->listen_fd = -1;
        bus->dir = g_dir_make_tmp("vboard-can-XXXXXX", NULL);
        if (!bus->dir) {
                g_free(bus);
                return NULL;
        }
        bus->socket_path = g_build_filename(bus->dir, "bus", NULL);
        bus->state_path = g_build_filename(bus->dir, "state", NULL);
        fd = open(bus->state_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0 || ftruncate(fd, sizeof(VcanState)) < 0) {
                if (fd >= 0)
                        close(fd);
                return NULL;
        }
        bus->state = mmap(NULL, sizeof(VcanState), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        close(fd);
        if (bus->state == MAP_FAILED)
                return NULL;
        bus->state->magic = VCAN_STATE_MAGIC;
        bus->clients = g_ptr_array_new();
        the_bus = bus;
        return bus;
}

static VcanIface *iface_find(CanBus *bus, int ifindex)
{
        for (uint32_t i = 0; i < bus->state->n_ifaces; i++)
                if (bus->state->ifaces[i].ifindex == ifindex)
                        return &bus->state->ifaces[i];
        return NULL;
}

static void iface_sysfs(CanBus *bus, uint32_t i)
{
        VcanIface *f = &bus->state->ifaces[i];
        bool up = (f->flags & VCAN_UP) != 0;
        if (!bus->syspaths[i])
                return;
        umockdev_testbed_set_attribute(bus->world->testbed, bus->syspaths[i], "operstate",
                                       up ? "up" : "down");
        umockdev_testbed_set_attribute(bus->world->testbed, bus->syspaths[i], "flags", up ? "0xc1" : "0x80");
}

int can_bus_iface(World *w, const char *name)
{
        CanBus *bus = bus_get(w);
        VcanIface *f;
        char idx[16];

        if (!bus)
                return -ENOMEM;
        if (strlen(name) == 0 || strlen(name) >= sizeof(f->name))
                return -EINVAL;
        for (uint32_t i = 0; i < bus->state->n_ifaces; i++)
                if (streq(bus->state->ifaces[i].name, name))
                        return bus->state->ifaces[i].ifindex;
        if (bus->state->n_ifaces >= VCAN_MAX_IFACES)
                return -ENOSPC;
        f = &bus->state->ifaces[bus->state->n_ifaces];
        g_strlcpy(f->name, name, sizeof(f->name));
        f->ifindex = VCAN_IFINDEX_0 + (int)bus->state->n_ifaces;
        snprintf(idx, sizeof(idx), "%d", f->ifindex);
        /* a SocketCAN interface as udev shows it: subsystem net, type 280 (ARPHRD_CAN) */
        bus->syspaths[bus->state->n_ifaces] = umockdev_testbed_add_device(
                w->testbed, "net", name, NULL, "type", "280", "ifindex", idx, "mtu", "16", "operstate", "up",
                "flags", "0xc1", "tx_queue_len", "10", NULL, "INTERFACE", name, "IFINDEX", idx, NULL);
        __atomic_store_n(&f->flags, VCAN_PRESENT | VCAN_UP, __ATOMIC_RELEASE);
        bus->state->n_ifaces++;
        return f->ifindex;
}

int can_bus_bridge_iface(World *w, const char *name)
{
        CanBus *bus = bus_get(w);
        VcanIface *f;

        if (!bus)
                return -ENOMEM;
        if (strlen(name) == 0 || strlen(name) >= sizeof(f->name))
                return -EINVAL;
        for (uint32_t i = 0; i < bus->state->n_ifaces; i++)
                if (streq(bus->state->ifaces[i].name, name))
                        return -EEXIST; /* one board provides it */
        if (bus->state->n_ifaces >= VCAN_MAX_IFACES)
                return -ENOSPC;
        f = &bus->state->ifaces[bus->state->n_ifaces];
        g_strlcpy(f->name, name, sizeof(f->name));
        f->ifindex = VCAN_IFINDEX_0 + (int)bus->state->n_ifaces;
        __atomic_store_n(&f->flags, VCAN_UP, __ATOMIC_RELEASE);
        bus->state->n_ifaces++;
        return f->ifindex;
}

void can_bus_iface_set_present(World *w, int ifindex, const char *parent)
{
        CanBus *bus = the_bus;
        char idx[16];

        if (!bus)
                return;
        for (uint32_t i = 0; i < bus->state->n_ifaces; i++) {
                VcanIface *f = &bus->state->ifaces[i];
                if (f->ifindex != ifindex)
                        continue;
                if (!parent) {
                        __atomic_and_fetch(&f->flags, ~(uint32_t)VCAN_PRESENT, __ATOMIC_ACQ_REL);
                        if (bus->syspaths[i]) {
                                umockdev_testbed_uevent(w->testbed, bus->syspaths[i], "remove");
                                umockdev_testbed_remove_device(w->testbed, bus->syspaths[i]);
                                g_clear_pointer(&bus->syspaths[i], g_free);
                        }
                        return;
                }
                if (bus->syspaths[i])
                        return;
                snprintf(idx, sizeof(idx), "%d", f->ifindex);
                /* as gs_usb registers it: below the USB interface, type 280 */
                bus->syspaths[i] = umockdev_testbed_add_device(
                        w->testbed, "net", f->name, parent, "type", "280", "ifindex", idx, "mtu", "16",
                        "operstate", "up", "flags", "0xc1", "tx_queue_len", "10", NULL, "INTERFACE", f->name,
                        "IFINDEX", idx, NULL);
                /* the bus is up as soon as Klipper brought it up */
                __atomic_or_fetch(&f->flags, VCAN_PRESENT | VCAN_UP, __ATOMIC_ACQ_REL);
                iface_sysfs(bus, i);
                return;
        }
}

static bool filter_match(const CanClient *c, canid_t id)
{
        for (unsigned i = 0; i < c->n_filters; i++) {
                const struct can_filter *f = &c->filters[i];
                bool m = ((id ^ f->can_id) & f->can_mask & ~CAN_INV_FILTER) == 0;
                if (f->can_id & CAN_INV_FILTER)
                        m = !m;
                if (m)
                        return true;
        }
        return false;
}

static void deliver_clients(CanBus *bus, int ifindex, const struct can_frame *f, const CanClient *from)
{
        for (guint i = 0; i < bus->clients->len; i++) {
                CanClient *c = bus->clients->pdata[i];
                if (c == from || c->ifindex < 0 || (c->ifindex != 0 && c->ifindex != ifindex) ||
                    !filter_match(c, f->can_id))
                        continue;
                /* a receiver whose queue is full loses the frame, as on a real host */
                if (send(c->fd, f, sizeof(*f), MSG_DONTWAIT | MSG_NOSIGNAL) != sizeof(*f))
                        bus->dropped++;
        }
}

void can_bus_deliver(World *w, int ifindex, const struct can_frame *f)
{
        CanBus *bus = the_bus;
        VcanIface *i;
        (void)w;
        if (!bus || !(i = iface_find(bus, ifindex)))
                return;
        if ((__atomic_load_n(&i->flags, __ATOMIC_ACQUIRE) & (VCAN_PRESENT | VCAN_UP | VCAN_BUS_OFF)) !=
            (VCAN_PRESENT | VCAN_UP))
                return;
        bus->frames++;
        deliver_clients(bus, ifindex, f, NULL);
}

static void client_free(CanClient *c)
{
        if (c->source)
                g_source_remove(c->source);
        close(c->fd);
        g_ptr_array_remove(c->bus->clients, c);
        g_free(c);
}

static gboolean on_client(gint fd, GIOCondition cond, gpointer userdata)
{
        CanClient *c = userdata;
        CanBus *bus = c->bus;
        World *w = bus->world;
        union {
                struct can_frame f;
                VcanCtl ctl;
                uint8_t raw[sizeof(VcanCtl) + VCAN_MAX_FILTERS * sizeof(struct can_filter)];
        } m;
        ssize_t n;

        (void)cond;
        n = recv(fd, &m, sizeof(m), MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return G_SOURCE_CONTINUE;
        if (n <= 0) {
                c->source = 0;
                client_free(c);
                return G_SOURCE_REMOVE;
        }
        if (n == sizeof(struct can_frame)) {
                if (c->ifindex <= 0)
                        return G_SOURCE_CONTINUE;
                bus->frames++;
                /* other sockets on the host see it (CAN_RAW_LOOPBACK is on by default) */
                deliver_clients(bus, c->ifindex, &m.f, c);
                g_mutex_lock(&w->lock);
                for (size_t i = 0; i < w->n_boards; i++) {
                        CanNode *node = w->boards[i]->can;
                        if (node && can_node_ifindex(node) == c->ifindex)
                                can_node_receive(node, &m.f);
                        /* a bridge's Klipper is on its bus only while it runs */
                        node = w->boards[i]->bridge;
                        if (node && w->boards[i]->mode == BOARD_MODE_APP &&
                            can_node_ifindex(node) == c->ifindex)
                                can_node_receive(node, &m.f);
                }
                g_mutex_unlock(&w->lock);
                return G_SOURCE_CONTINUE;
        }
        if ((size_t)n >= sizeof(VcanCtl) && m.ctl.magic == VCAN_STATE_MAGIC) {
                if (m.ctl.op == VCAN_CTL_BIND)
                        c->ifindex = m.ctl.ifindex;
                else if (m.ctl.op == VCAN_CTL_FILTER && m.ctl.n_filters <= VCAN_MAX_FILTERS &&
                         (size_t)n == sizeof(VcanCtl) + m.ctl.n_filters * sizeof(struct can_filter)) {
                        c->n_filters = m.ctl.n_filters;
                        memcpy(c->filters, m.ctl.filters, c->n_filters * sizeof(struct can_filter));
                }
        }
        return G_SOURCE_CONTINUE;
}

static gboolean on_accept(gint fd, GIOCondition cond, gpointer userdata)
{
        CanBus *bus = userdata;
        CanClient *c;
        int cfd;

        (void)cond;
        cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (cfd < 0)
                return G_SOURCE_CONTINUE;
        c = g_new0(CanClient, 1);
        c->bus = bus;
        c->fd = cfd;
        c->ifindex = -1;
        /* a new CAN_RAW socket receives everything */
        c->n_filters = 1;
        c->filters[0] = (struct can_filter){ 0, 0 };
        c->source = g_unix_fd_add(cfd, G_IO_IN | G_IO_HUP | G_IO_ERR, on_client, c);
        g_ptr_array_add(bus->clients, c);
        return G_SOURCE_CONTINUE;
}

int can_bus_start(World *w)
{
        CanBus *bus = the_bus;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        const char *old = getenv("LD_PRELOAD");
        g_autofree char *preload = NULL;

        if (!bus)
                return 0;
        (void)w;
        if (strlen(bus->socket_path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, bus->socket_path);
        bus->listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (bus->listen_fd < 0)
                return -errno;
        if (bind(bus->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(bus->listen_fd, 64) < 0)
                return -errno;
        bus->listen_source = g_unix_fd_add(bus->listen_fd, G_IO_IN, on_accept, bus);
        setenv(VCAN_ENV_BUS, bus->socket_path, 1);
        setenv(VCAN_ENV_STATE, bus->state_path, 1);
        /* before umockdev's preload, which would otherwise see the ioctls first */
        preload = old && *old ? g_strdup_printf("%s:%s", VBOARD_CAN_PRELOAD, old)
                              : g_strdup(VBOARD_CAN_PRELOAD);
        setenv("LD_PRELOAD", preload, 1);
        return 0;
}

void can_bus_free(World *w)
{
        CanBus *bus = the_bus;
        (void)w;
        if (!bus)
                return;
        while (bus->clients->len)
                client_free(bus->clients->pdata[0]);
        g_ptr_array_free(bus->clients, TRUE);
        if (bus->listen_source)
                g_source_remove(bus->listen_source);
        if (bus->listen_fd >= 0)
                close(bus->listen_fd);
        unlink(bus->socket_path);
        unlink(bus->state_path);
        rmdir(bus->dir);
        munmap(bus->state, sizeof(VcanState));
        for (size_t i = 0; i < VCAN_MAX_IFACES; i++)
                g_free(bus->syspaths[i]);
        g_free(bus->socket_path);
        g_free(bus->state_path);
        g_free(bus->dir);
        g_free(bus);
        the_bus = NULL;
}

json_t *can_bus_control(World *w, const char *verb, const char *name)
{
        CanBus *bus = the_bus;
        (void)w;
        if (!bus)
                return json_pack("{s:b,s:s}", "ok", 0, "error", "no CAN interface in this world");
        for (uint32_t i = 0; i < bus->state->n_ifaces; i++) {
                VcanIface *f = &bus->state->ifaces[i];
                uint32_t flags = __atomic_load_n(&f->flags, __ATOMIC_ACQUIRE);
                if (!streq(f->name, name))
                        continue;
                if (streq(verb, "can-up"))
                        flags |= VCAN_UP;
                else if (streq(verb, "can-down"))
                        flags &= ~VCAN_UP;
                else if (streq(verb, "can-bus-off"))
                        flags |= VCAN_BUS_OFF;
                else if (streq(verb, "can-bus-on"))
                        flags &= ~VCAN_BUS_OFF;
                else
                        return json_pack("{s:b,s:s}", "ok", 0, "error", "unknown CAN verb");
                __atomic_store_n(&f->flags, flags, __ATOMIC_RELEASE);
                iface_sysfs(bus, i);
                return json_pack("{s:b,s:s,s:b,s:b}", "ok", 1, "interface", f->name, "up",
                                 (flags & VCAN_UP) != 0, "bus_off", (flags & VCAN_BUS_OFF) != 0);
        }
        return json_pack("{s:b,s:s}", "ok", 0, "error", "no such CAN interface");
}
