/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * LD_PRELOAD layer that gives a program run inside vboard SocketCAN
 * (PF_CAN, SOCK_RAW, CAN_RAW) on a kernel without AF_CAN; see can-wire.h
 * for the arrangement. Loaded before umockdev's preload; everything that is
 * not CAN passes through to the next definition (RTLD_NEXT).
 *
 * Covered: socket, bind (sockaddr_can with an ifindex), setsockopt
 * (CAN_RAW_FILTER honoured by the bus; the other CAN_RAW options
 * accepted), ioctl SIOCGIFINDEX / SIOCGIFNAME, if_nametoindex /
 * if_indextoname, write/send/sendto/sendmsg of whole struct can_frame
 * (EINVAL for other sizes, ENETDOWN when the interface is down or gone,
 * ENOBUFS when bus-off or when the queue is full on a non-blocking socket),
 * recvfrom/recvmsg filling in a sockaddr_can, getsockname.
 */

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/can/raw.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "can-wire.h"

/* the interposed functions must be visible to the dynamic linker */
#pragma GCC visibility push(default)

#define MAX_FD 4096

/* per fd: 0 = not ours, else 1 + the bound ifindex (1 = unbound) */
static int can_fds[MAX_FD];
static const VcanState *state;

#define NEXT(ret, name, ...)                    \
        static ret (*next_##name)(__VA_ARGS__); \
        if (!next_##name)                       \
        next_##name = (ret(*)(__VA_ARGS__))dlsym(RTLD_NEXT, #name)

static const VcanState *get_state(void)
{
        const char *path;
        int fd;
        void *p;

        if (state)
                return state;
        path = getenv(VCAN_ENV_STATE);
        if (!path)
                return NULL;
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return NULL;
        p = mmap(NULL, sizeof(VcanState), PROT_READ, MAP_SHARED, fd, 0);
        close(fd);
        if (p == MAP_FAILED)
                return NULL;
        state = p;
        return state;
}

static const VcanIface *iface_by_name(const char *name)
{
        const VcanState *s = get_state();
        if (!s || !name)
                return NULL;
        for (uint32_t i = 0; i < s->n_ifaces && i < VCAN_MAX_IFACES; i++)
                if (strncmp(s->ifaces[i].name, name, sizeof(s->ifaces[i].name)) == 0 &&
                    (__atomic_load_n(&s->ifaces[i].flags, __ATOMIC_ACQUIRE) & VCAN_PRESENT))
                        return &s->ifaces[i];
        return NULL;
}

static const VcanIface *iface_by_index(int ifindex)
{
        const VcanState *s = get_state();
        if (!s)
                return NULL;
        for (uint32_t i = 0; i < s->n_ifaces && i < VCAN_MAX_IFACES; i++)
                if (s->ifaces[i].ifindex == ifindex)
                        return &s->ifaces[i];
        return NULL;
}

static bool is_can(int fd)
{
        return fd >= 0 && fd < MAX_FD && can_fds[fd] != 0;
}

int socket(int domain, int type, int protocol)
{
        NEXT(int, socket, int, int, int);
        NEXT(int, connect, int, const struct sockaddr *, socklen_t);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        const char *path;
        int fd;

        if (domain != PF_CAN || !getenv(VCAN_ENV_BUS))
                return next_socket(domain, type, protocol);
        if ((type & 0xf) != SOCK_RAW || protocol != CAN_RAW) {
                errno = EPROTONOSUPPORT;
                return -1;
        }
        path = getenv(VCAN_ENV_BUS);
        if (strlen(path) >= sizeof(sa.sun_path)) {
                errno = EAFNOSUPPORT;
                return -1;
        }
        strcpy(sa.sun_path, path);
        fd = next_socket(AF_UNIX, SOCK_SEQPACKET | (type & (SOCK_NONBLOCK | SOCK_CLOEXEC)), 0);
        if (fd < 0)
                return -1;
        if (fd >= MAX_FD || next_connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                close(fd);
                errno = EAFNOSUPPORT;
                return -1;
        }
        can_fds[fd] = 1;
        return fd;
}

int close(int fd)
{
        NEXT(int, close, int);
        if (fd >= 0 && fd < MAX_FD)
                can_fds[fd] = 0;
        return next_close(fd);
}

static int send_ctl(int fd, const VcanCtl *c, size_t size)
{
        NEXT(ssize_t, send, int, const void *, size_t, int);
        return next_send(fd, c, size, MSG_NOSIGNAL) == (ssize_t)size ? 0 : -1;
}

int bind(int fd, const struct sockaddr *addr, socklen_t len)
{
        NEXT(int, bind, int, const struct sockaddr *, socklen_t);
        const struct sockaddr_can *sc = (const struct sockaddr_can *)addr;
        VcanCtl c = { .magic = VCAN_STATE_MAGIC, .op = VCAN_CTL_BIND };

        if (!is_can(fd))
                return next_bind(fd, addr, len);
        if (!addr || len < sizeof(*sc) - sizeof(sc->can_addr) || sc->can_family != AF_CAN) {
                errno = EINVAL;
                return -1;
        }
        if (sc->can_ifindex != 0 && !iface_by_index(sc->can_ifindex)) {
                errno = ENODEV;
                return -1;
        }
        c.ifindex = sc->can_ifindex;
        if (send_ctl(fd, &c, sizeof(c)) < 0)
                return -1;
        can_fds[fd] = 1 + sc->can_ifindex;
        return 0;
}

int setsockopt(int fd, int level, int name, const void *value, socklen_t len)
{
        NEXT(int, setsockopt, int, int, int, const void *, socklen_t);
        struct {
                VcanCtl c;
                struct can_filter f[VCAN_MAX_FILTERS];
        } m = { .c = { .magic = VCAN_STATE_MAGIC, .op = VCAN_CTL_FILTER } };

        if (!is_can(fd) || level != SOL_CAN_RAW)
                return next_setsockopt(fd, level, name, value, len);
        if (name != CAN_RAW_FILTER)
                return 0; /* loopback, recv_own_msgs, error filter: the bus keeps the defaults */
        if (len % sizeof(struct can_filter) || len / sizeof(struct can_filter) > VCAN_MAX_FILTERS ||
            (len && !value)) {
                errno = EINVAL;
                return -1;
        }
        m.c.n_filters = len / sizeof(struct can_filter);
        if (len)
                memcpy(m.f, value, len);
        return send_ctl(fd, &m.c, sizeof(m.c) + len);
}

int ioctl(int fd, unsigned long request, ...)
{
        NEXT(int, ioctl, int, unsigned long, ...);
        va_list ap;
        void *arg;

        va_start(ap, request);
        arg = va_arg(ap, void *);
        va_end(ap);
        if (request == SIOCGIFINDEX && arg) {
                struct ifreq *ifr = arg;
                const VcanIface *i = iface_by_name(ifr->ifr_name);
                if (i) {
                        ifr->ifr_ifindex = i->ifindex;
                        return 0;
                }
        }
        if (request == SIOCGIFNAME && arg) {
                struct ifreq *ifr = arg;
                const VcanIface *i = iface_by_index(ifr->ifr_ifindex);
                if (i) {
                        memcpy(ifr->ifr_name, i->name, sizeof(i->name));
                        return 0;
                }
        }
        return next_ioctl(fd, request, arg);
}

unsigned int if_nametoindex(const char *name)
{
        NEXT(unsigned int, if_nametoindex, const char *);
        const VcanIface *i = iface_by_name(name);
        return i ? (unsigned)i->ifindex : next_if_nametoindex(name);
}

char *if_indextoname(unsigned int ifindex, char name[IF_NAMESIZE])
{
        NEXT(char *, if_indextoname, unsigned int, char *);
        const VcanIface *i = iface_by_index((int)ifindex);
        if (i) {
                strncpy(name, i->name, IF_NAMESIZE);
                name[IF_NAMESIZE - 1] = 0;
                return name;
        }
        return next_if_indextoname(ifindex, name);
}

/* The checks a real CAN_RAW socket makes before queueing a frame. */
static int check_write(int fd, size_t size)
{
        int ifindex = can_fds[fd] - 1;
        const VcanIface *i;
        uint32_t flags;

        if (size != sizeof(struct can_frame))
                return -EINVAL;
        if (ifindex == 0)
                return -ENXIO; /* raw_sendmsg without an interface */
        i = iface_by_index(ifindex);
        if (!i)
                return -ENODEV;
        flags = __atomic_load_n(&i->flags, __ATOMIC_ACQUIRE);
        if (!(flags & VCAN_PRESENT))
                return -ENODEV;
        if (!(flags & VCAN_UP))
                return -ENETDOWN;
        if (flags & VCAN_BUS_OFF)
                return -ENOBUFS;
        return 0;
}

static ssize_t after_write(ssize_t n)
{
        /* a full queue on a non-blocking CAN socket is ENOBUFS, not EAGAIN */
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                errno = ENOBUFS;
        return n;
}

ssize_t write(int fd, const void *buf, size_t size)
{
        NEXT(ssize_t, write, int, const void *, size_t);
        int r;
        if (!is_can(fd))
                return next_write(fd, buf, size);
        r = check_write(fd, size);
        if (r < 0) {
                errno = -r;
                return -1;
        }
        return after_write(next_write(fd, buf, size));
}

ssize_t send(int fd, const void *buf, size_t size, int flags)
{
        NEXT(ssize_t, send, int, const void *, size_t, int);
        int r;
        if (!is_can(fd))
                return next_send(fd, buf, size, flags);
        r = check_write(fd, size);
        if (r < 0) {
                errno = -r;
                return -1;
        }
        return after_write(next_send(fd, buf, size, flags | MSG_NOSIGNAL));
}

ssize_t sendto(int fd, const void *buf, size_t size, int flags, const struct sockaddr *to, socklen_t tolen)
{
        NEXT(ssize_t, sendto, int, const void *, size_t, int, const struct sockaddr *, socklen_t);
        if (!is_can(fd))
                return next_sendto(fd, buf, size, flags, to, tolen);
        return send(fd, buf, size, flags);
}

ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
        NEXT(ssize_t, sendmsg, int, const struct msghdr *, int);
        struct can_frame f;
        size_t total = 0;

        if (!is_can(fd))
                return next_sendmsg(fd, msg, flags);
        for (size_t k = 0; k < msg->msg_iovlen; k++)
                total += msg->msg_iov[k].iov_len;
        if (total != sizeof(f)) {
                errno = EINVAL;
                return -1;
        }
        total = 0;
        for (size_t k = 0; k < msg->msg_iovlen; k++) {
                memcpy((char *)&f + total, msg->msg_iov[k].iov_base, msg->msg_iov[k].iov_len);
                total += msg->msg_iov[k].iov_len;
        }
        return send(fd, &f, sizeof(f), flags);
}

static void fill_addr(int fd, struct sockaddr *addr, socklen_t *len)
{
        struct sockaddr_can sc = { .can_family = AF_CAN, .can_ifindex = can_fds[fd] - 1 };
        if (!addr || !len)
                return;
        memcpy(addr, &sc, *len < sizeof(sc) ? *len : sizeof(sc));
        *len = sizeof(sc);
}

ssize_t recvfrom(int fd, void *buf, size_t size, int flags, struct sockaddr *from, socklen_t *fromlen)
{
        NEXT(ssize_t, recvfrom, int, void *, size_t, int, struct sockaddr *, socklen_t *);
        ssize_t n;
        if (!is_can(fd))
                return next_recvfrom(fd, buf, size, flags, from, fromlen);
        n = next_recvfrom(fd, buf, size, flags, NULL, NULL);
        if (n >= 0)
                fill_addr(fd, from, fromlen);
        return n;
}

ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
        NEXT(ssize_t, recvmsg, int, struct msghdr *, int);
        void *name;
        socklen_t namelen;
        ssize_t n;

        if (!is_can(fd))
                return next_recvmsg(fd, msg, flags);
        name = msg->msg_name;
        namelen = msg->msg_namelen;
        msg->msg_name = NULL;
        msg->msg_namelen = 0;
        n = next_recvmsg(fd, msg, flags);
        msg->msg_name = name;
        msg->msg_namelen = namelen;
        if (n >= 0 && name)
                fill_addr(fd, name, &msg->msg_namelen);
        return n;
}

int getsockname(int fd, struct sockaddr *addr, socklen_t *len)
{
        NEXT(int, getsockname, int, struct sockaddr *, socklen_t *);
        if (!is_can(fd))
                return next_getsockname(fd, addr, len);
        fill_addr(fd, addr, len);
        return 0;
}
