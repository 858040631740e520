/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <linux/can.h>
#include <linux/can/raw.h>
#include <net/if.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "can/can-transport.h"
#include "util/macros.h"
#include "util/time-util.h"

/* A full transmit queue clears in microseconds on a working bus; this long
 * without progress means bus-off or no node acknowledging. */
#define CAN_TX_STALL_USEC (200u * 1000u)

struct CanTransport {
        SerialTransport base;
        int fd;
        int ifindex;
        int node_id; /* -1: none selected */
        /* data of a frame not yet handed to the reader */
        uint8_t pending[CAN_DATA_MAX];
        size_t pending_len, pending_off;
        uint64_t tx, rx;
};

static int wait_fd(int fd, short events, uint64_t deadline)
{
        for (;;) {
                struct pollfd p = { .fd = fd, .events = events };
                uint64_t n = now_usec(CLOCK_MONOTONIC);
                int ms = n >= deadline ? 0 : (int)MIN((deadline - n + 999) / 1000, (uint64_t)INT32_MAX);
                int r = poll(&p, 1, ms);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return -errno;
                if (r == 0)
                        return -ETIMEDOUT;
                if (p.revents & (POLLERR | POLLNVAL))
                        return -ENODEV;
                if (p.revents & events)
                        return 0;
                if (p.revents & POLLHUP)
                        return -ENODEV;
        }
}

int can_interface_is_up(const char *iface)
{
        char path[128], buf[32];
        unsigned long flags;
        ssize_t n;
        int fd;

        if (if_nametoindex(iface) == 0)
                return -ENODEV;
        snprintf(path, sizeof(path), "/sys/class/net/%s/flags", iface);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return 1; /* unknown: let the first write tell */
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
                return 1;
        buf[n] = 0;
        flags = strtoul(buf, NULL, 0);
        return (flags & IFF_UP) ? 1 : 0;
}

static int set_filters(CanTransport *t)
{
        struct can_filter f[2] = {
                { .can_id = CAN_ADMIN_RESP_ID, .can_mask = CAN_SFF_MASK | CAN_EFF_FLAG | CAN_RTR_FLAG },
        };
        size_t n = 1;

        if (t->node_id >= 0)
                f[n++] = (struct can_filter){ .can_id = can_node_tx_id((uint8_t)t->node_id),
                                              .can_mask = CAN_SFF_MASK | CAN_EFF_FLAG | CAN_RTR_FLAG };
        if (setsockopt(t->fd, SOL_CAN_RAW, CAN_RAW_FILTER, f, (socklen_t)(n * sizeof(f[0]))) < 0)
                return -errno;
        return 0;
}

static int send_frame(CanTransport *t, uint32_t id, const uint8_t *data, size_t len, uint64_t deadline)
{
        struct can_frame f = { .can_id = id, .len = (uint8_t)len };
        uint64_t stall_end = MIN(deadline, now_usec(CLOCK_MONOTONIC) + CAN_TX_STALL_USEC);

        memcpy(f.data, data, len);
        for (;;) {
                ssize_t n = write(t->fd, &f, sizeof(f));
                if (n == (ssize_t)sizeof(f)) {
                        t->tx++;
                        return 0;
                }
                if (n >= 0)
                        return -EIO;
                if (errno == EINTR)
                        continue;
                if (errno == ENETDOWN || errno == ENODEV || errno == ENXIO)
                        return -errno;
                if (errno != ENOBUFS && errno != EAGAIN)
                        return -errno;
                /* the queue is full: wait for room, but not forever */
                if (now_usec(CLOCK_MONOTONIC) >= stall_end)
                        return -ENOBUFS;
                int r = wait_fd(t->fd, POLLOUT, MIN(stall_end, now_usec(CLOCK_MONOTONIC) + 2000));
                if (r == -ETIMEDOUT)
                        continue;
                if (r < 0)
                        return r;
                /* a CAN socket reports POLLOUT while its queue is full; pace the retries */
                struct timespec ts = { 0, 500 * 1000 };
                nanosleep(&ts, NULL);
        }
}

/* Read one frame within the deadline: 0, -ETIMEDOUT or an error. */
static int recv_frame(CanTransport *t, struct can_frame *f, uint64_t deadline)
{
        for (;;) {
                ssize_t n = read(t->fd, f, sizeof(*f));
                if (n == (ssize_t)sizeof(*f)) {
                        t->rx++;
                        return 0;
                }
                if (n == 0)
                        return -ENODEV;
                if (n > 0)
                        continue; /* a CAN FD frame: not ours */
                if (errno == EINTR)
                        continue;
                if (errno != EAGAIN)
                        return errno == ENETDOWN ? -ENETDOWN : -ENODEV;
                int r = wait_fd(t->fd, POLLIN, deadline);
                if (r < 0)
                        return r;
        }
}

static ssize_t can_read(SerialTransport *base, void *buf, size_t size, uint64_t timeout_usec)
{
        CanTransport *t = (CanTransport *)base;
        uint64_t deadline = now_usec(CLOCK_MONOTONIC) + timeout_usec;
        uint8_t *out = buf;
        size_t got = 0;

        if (t->node_id < 0)
                return -EINVAL;
        for (;;) {
                if (t->pending_off < t->pending_len) {
                        size_t k = MIN(size - got, t->pending_len - t->pending_off);
                        memcpy(out + got, t->pending + t->pending_off, k);
                        t->pending_off += k;
                        got += k;
                        if (got == size)
                                return (ssize_t)got;
                }
                struct can_frame f;
                /* after the first bytes, take only what is already there */
                int r = recv_frame(t, &f, got > 0 ? 0 : deadline);
                if (r == -ETIMEDOUT)
                        return got > 0 ? (ssize_t)got : -ETIMEDOUT;
                if (r < 0)
                        return got > 0 ? (ssize_t)got : r;
                if ((f.can_id & (CAN_EFF_FLAG | CAN_RTR_FLAG | CAN_ERR_FLAG)) ||
                    (f.can_id & CAN_SFF_MASK) != can_node_tx_id((uint8_t)t->node_id))
                        continue;
                t->pending_len = MIN((size_t)f.len, (size_t)CAN_DATA_MAX);
                t->pending_off = 0;
                memcpy(t->pending, f.data, t->pending_len);
        }
}

static int can_write(SerialTransport *base, const void *buf, size_t size, uint64_t timeout_usec)
{
        CanTransport *t = (CanTransport *)base;
        uint64_t deadline = now_usec(CLOCK_MONOTONIC) + timeout_usec;
        const uint8_t *p = buf;

        if (t->node_id < 0)
                return -EINVAL;
        for (size_t i = 0; i < can_frames_count(size); i++) {
                int r = send_frame(t, can_node_rx_id((uint8_t)t->node_id), p + i * CAN_DATA_MAX,
                                   can_frame_length(size, i), deadline);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int can_flush_input(SerialTransport *base)
{
        CanTransport *t = (CanTransport *)base;
        struct can_frame f;

        t->pending_len = t->pending_off = 0;
        for (;;) {
                int r = recv_frame(t, &f, 0);
                if (r == -ETIMEDOUT)
                        return 0;
                if (r < 0)
                        return r;
        }
}

static const SerialTransportOps can_ops = {
        .kind = "can",
        .read = can_read,
        .write = can_write,
        .flush_input = can_flush_input,
};

int can_transport_open(CanTransport **ret, const char *iface)
{
        _cleanup_(can_transport_freep) CanTransport *t = NULL;
        struct sockaddr_can sa = { .can_family = AF_CAN };
        unsigned idx;
        int r;

        if (!iface || strlen(iface) >= IF_NAMESIZE)
                return -EINVAL;
        idx = if_nametoindex(iface);
        if (idx == 0)
                return -ENODEV;
        t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        t->base.ops = &can_ops;
        t->node_id = -1;
        t->ifindex = (int)idx;
        t->fd = socket(PF_CAN, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, CAN_RAW);
        if (t->fd < 0)
                return errno == EAFNOSUPPORT || errno == EPROTONOSUPPORT ? -EAFNOSUPPORT : -errno;
        r = set_filters(t);
        if (r < 0)
                return r;
        sa.can_ifindex = (int)idx;
        if (bind(t->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return -errno;
        *ret = TAKE_PTR(t);
        return 0;
}

CanTransport *can_transport_free(CanTransport *t)
{
        if (!t)
                return NULL;
        safe_close(t->fd);
        free(t);
        return NULL;
}

int can_transport_admin(CanTransport *t, const uint8_t *data, size_t size, uint64_t timeout_usec)
{
        return send_frame(t, CAN_ADMIN_ID, data, size, now_usec(CLOCK_MONOTONIC) + timeout_usec);
}

int can_transport_query(CanTransport *t, uint64_t window_usec, CanNodeAnswer *ret, size_t max)
{
        uint8_t d[CAN_DATA_MAX];
        uint64_t deadline;
        size_t n = 0;
        int r;

        r = can_transport_admin(t, d, can_admin_encode_query(d), window_usec);
        if (r < 0)
                return r;
        deadline = now_usec(CLOCK_MONOTONIC) + window_usec;
        for (;;) {
                struct can_frame f;
                CanNodeAnswer a;
                bool dup = false;

                r = recv_frame(t, &f, deadline);
                if (r == -ETIMEDOUT)
                        return (int)n;
                if (r < 0)
                        return r;
                if ((f.can_id & (CAN_EFF_FLAG | CAN_RTR_FLAG | CAN_ERR_FLAG)) ||
                    (f.can_id & CAN_SFF_MASK) != CAN_ADMIN_RESP_ID ||
                    can_admin_decode_answer(f.data, MIN((size_t)f.len, (size_t)CAN_DATA_MAX), &a.uuid,
                                            &a.app) < 0)
                        continue;
                for (size_t i = 0; i < n; i++)
                        dup = dup || can_uuid_equal(&ret[i].uuid, &a.uuid);
                if (!dup && n < max)
                        ret[n++] = a;
        }
}

int can_transport_select_node(CanTransport *t, uint8_t node_id)
{
        t->node_id = node_id;
        t->pending_len = t->pending_off = 0;
        return set_filters(t);
}

int can_transport_get_fd(const CanTransport *t)
{
        return t->fd;
}

int can_transport_next_answer(CanTransport *t, CanNodeAnswer *ret)
{
        for (;;) {
                struct can_frame f;
                int r = recv_frame(t, &f, 0);
                if (r == -ETIMEDOUT)
                        return 0;
                if (r < 0)
                        return r;
                if ((f.can_id & (CAN_EFF_FLAG | CAN_RTR_FLAG | CAN_ERR_FLAG)) ||
                    (f.can_id & CAN_SFF_MASK) != CAN_ADMIN_RESP_ID)
                        continue;
                if (can_admin_decode_answer(f.data, MIN((size_t)f.len, (size_t)CAN_DATA_MAX), &ret->uuid,
                                            &ret->app) == 0)
                        return 1;
        }
}

SerialTransport *can_transport_get_transport(CanTransport *t)
{
        return &t->base;
}

void can_transport_get_counts(const CanTransport *t, uint64_t *ret_tx, uint64_t *ret_rx)
{
        *ret_tx = t->tx;
        *ret_rx = t->rx;
}
