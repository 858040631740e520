/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Socket latency load for the benchmarks: N connections to flashd's socket,
 * each sending the same JSON-RPC request again as soon as the previous
 * answer arrived (closed loop), M requests each. Prints the latency
 * percentiles as one JSON object. A C client so that the client's own
 * processing does not end up in the measured latency.
 *
 *   rpc-load SOCKET CLIENTS REQUESTS [METHOD [INTERVAL_MS]]
 *
 * INTERVAL_MS > 0: open loop instead: each client sends a request every
 * INTERVAL_MS (clients evenly staggered; a client whose answer has not come
 * yet sends when it comes), like frontends that poll.
 *
 * Built by tests/bench/run with the system compiler; no library needed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

typedef struct Conn {
        int fd;
        int left;
        double sent;
        double due; /* open loop: when the next request is due */
        int outstanding;
        /* the current frame: does it carry an "id" (a response, not a notification) */
        size_t frame_len;
        int frame_has_id;
        char tail[4]; /* last bytes of the frame so far, to find "id" across reads */
} Conn;

static double now(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;
        return x < y ? -1 : x > y;
}

static int send_all(int fd, const char *buf, size_t len)
{
        while (len > 0) {
                ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                buf += n;
                len -= (size_t)n;
        }
        return 0;
}

int main(int argc, char **argv)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        char req[256];
        static char buf[1 << 16];
        int clients, per, active, n_lat = 0, ep, interval_ms;
        double *lat, t_start, deadline;
        Conn *conns;

        if (argc < 4) {
                fprintf(stderr, "usage: rpc-load SOCKET CLIENTS REQUESTS [METHOD [THINK_US]]\n");
                return 2;
        }
        clients = atoi(argv[2]);
        per = atoi(argv[3]);
        interval_ms = argc > 5 ? atoi(argv[5]) : 0;
        if (clients <= 0 || per <= 0 || strlen(argv[1]) >= sizeof(sa.sun_path))
                return 2;
        snprintf(req, sizeof(req), "{\"jsonrpc\":\"2.0\",\"method\":\"%s\",\"id\":1}\x03",
                 argc > 4 ? argv[4] : "device.list");
        strcpy(sa.sun_path, argv[1]);
        conns = calloc((size_t)clients, sizeof(Conn));
        lat = calloc((size_t)clients * (size_t)per, sizeof(double));
        ep = epoll_create1(EPOLL_CLOEXEC);
        if (!conns || !lat || ep < 0)
                return 1;
        for (int i = 0; i < clients; i++) {
                struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &conns[i] };
                conns[i].fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (conns[i].fd < 0 || connect(conns[i].fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                        perror("connect");
                        return 1;
                }
                conns[i].left = per;
                if (epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev) < 0)
                        return 1;
        }
        t_start = now();
        deadline = t_start + 120;
        for (int i = 0; i < clients; i++) {
                if (interval_ms > 0) {
                        conns[i].due = t_start + interval_ms * 1e-3 * i / clients;
                        continue;
                }
                conns[i].sent = now();
                conns[i].outstanding = 1;
                if (send_all(conns[i].fd, req, strlen(req)) < 0) {
                        perror("send");
                        return 1;
                }
        }
        active = clients;
        while (active > 0) {
                struct epoll_event evs[64];
                int timeout = 1000;
                if (interval_ms > 0) {
                        double t = now();
                        for (int i = 0; i < clients; i++) {
                                Conn *c = &conns[i];
                                if (c->outstanding || c->left <= 0)
                                        continue;
                                if (c->due <= t) {
                                        c->sent = now();
                                        c->outstanding = 1;
                                        c->due += interval_ms * 1e-3;
                                        if (c->due < c->sent)
                                                c->due = c->sent + interval_ms * 1e-3;
                                        if (send_all(c->fd, req, strlen(req)) < 0)
                                                return 1;
                                } else if ((c->due - t) * 1e3 < timeout)
                                        timeout = (int)((c->due - t) * 1e3) + 1;
                        }
                }
                int n = epoll_wait(ep, evs, 64, timeout);
                if (n < 0 && errno != EINTR)
                        return 1;
                if (now() > deadline) {
                        fprintf(stderr, "rpc-load: timed out\n");
                        return 1;
                }
                for (int e = 0; e < n; e++) {
                        Conn *c = evs[e].data.ptr;
                        ssize_t got = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
                        if (got == 0) {
                                fprintf(stderr, "rpc-load: flashd closed a connection\n");
                                return 1;
                        }
                        if (got < 0)
                                continue;
                        for (ssize_t k = 0; k < got; k++) {
                                char ch = buf[k];
                                if (ch != '\x03') {
                                        /* "id": in a response's top-level object; notifications have none */
                                        memmove(c->tail, c->tail + 1, 3);
                                        c->tail[3] = ch;
                                        if (memcmp(c->tail, "\"id\"", 4) == 0)
                                                c->frame_has_id = 1;
                                        c->frame_len++;
                                        continue;
                                }
                                if (c->frame_has_id) {
                                        lat[n_lat++] = now() - c->sent;
                                        if (--c->left <= 0)
                                                active--;
                                        else if (interval_ms > 0) {
                                                c->outstanding = 0;
                                        } else {
                                                c->sent = now();
                                                if (send_all(c->fd, req, strlen(req)) < 0)
                                                        return 1;
                                        }
                                }
                                c->frame_len = 0;
                                c->frame_has_id = 0;
                                memset(c->tail, 0, sizeof(c->tail));
                        }
                }
        }
        double wall = now() - t_start;
        qsort(lat, (size_t)n_lat, sizeof(double), cmp_double);
#define PCT(p) (lat[(int)((p) / 100.0 * (n_lat - 1) + 0.5)] * 1e3)
        printf("{\"n\": %d, \"p50_ms\": %.4f, \"p90_ms\": %.4f, \"p99_ms\": %.4f, \"max_ms\": %.4f, "
               "\"requests_per_second\": %.1f}\n",
               n_lat, PCT(50), PCT(90), PCT(99), lat[n_lat - 1] * 1e3, n_lat / wall);
        for (int i = 0; i < clients; i++)
                close(conns[i].fd);
        free(conns);
        free(lat);
        close(ep);
        return 0;
}
