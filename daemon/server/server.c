/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/fs-util.h"
#include "util/log.h"
#include "util/macros.h"
#include "manager.h"
#include "server/peer-auth.h"
#include "server/rpc.h"
#include "server/server.h"

typedef struct Client Client;

/* An fd passed with SCM_RIGHTS and the messages it may belong to: those
 * that start in the bytes of the read that brought it (the kernel ends a
 * read with the segment carrying fds, but may join earlier plain data in
 * front of it). */
typedef struct PendingFd {
        int fd;
        uint64_t first_seq, last_seq;
} PendingFd;

#define CLIENT_PENDING_FDS_MAX 8

typedef struct Listener {
        int fd;
        sd_event_source *source;
} Listener;

struct Client {
        Server *server;
        uint64_t id;
        int fd;
        sd_event_source *source;
        RpcFrameReader *reader;
        RpcPeer peer;
        char *out;
        size_t out_len, out_alloc, out_start;
        bool identified;
        bool read_eof; /* peer shut down its sending side: flush, then close */
        /* Complete messages wait beyond this wakeup's share: no reading
         * until they are handled (from Server.backlog). */
        bool backlog;
        uint64_t backlog_round; /* the last Server.backlog_round it had a turn in */
        size_t buffered;        /* input bytes counted in Server.input_total */
        unsigned budget_drops;  /* messages dropped for the total input limit, not reported yet */
        PendingFd pending_fds[CLIENT_PENDING_FDS_MAX];
        size_t n_pending_fds;
        char *name, *version, *type, *url;
        bool dead;
        Client *next;
};

struct Server {
        Manager *manager;
        Listener *listeners;
        size_t n_listeners;
        Client *clients; /* live */
        Client *dead;    /* disconnected, freed from a defer source */
        sd_event_source *reaper;
        size_t n_clients;
        size_t clients_max;   /* SERVER_CLIENTS_MAX, lower with a low fd limit */
        bool refusing_logged; /* "too many clients" said once until there is room */
        size_t input_total;   /* input buffered for all clients */
        sd_event_source *backlog;
        uint64_t backlog_round;
        sd_event_source *accept_timer; /* listeners paused after EMFILE/ENFILE */
        bool accept_failure_logged;
        uint64_t next_id;
        char *unlink_path;                  /* socket we created and remove again */
        gid_t flash_gid;                    /* members may mutate; (gid_t)-1: no such group */
        ServerBroadcastHook broadcast_hook; /* the Moonraker agent */
        void *broadcast_hook_userdata;
};

static Client *client_free(Client *c)
{
        if (!c)
                return NULL;
        sd_event_source_disable_unref(c->source);
        safe_close(c->fd);
        for (size_t i = 0; i < c->n_pending_fds; i++)
                safe_close(c->pending_fds[i].fd);
        rpc_frame_reader_free(c->reader);
        peer_cred_free(c->peer.cred);
        free(c->out);
        free(c->name);
        free(c->version);
        free(c->type);
        free(c->url);
        free(c);
        return NULL;
}

static int on_reap(sd_event_source *s, void *userdata)
{
        Server *server = userdata;

        while (server->dead) {
                Client *c = server->dead;
                server->dead = c->next;
                client_free(c);
        }
        return 0;
}

/* Unlink the client at once (replies to it are dropped from now on) and
 * free it from the event loop, since we may be inside its own handler. */
static void client_disconnect(Client *c, const char *why)
{
        Server *s = c->server;

        if (c->dead)
                return;
        log_info("client %llu disconnected: %s", (unsigned long long)c->id, why);
        c->dead = true;
        s->input_total -= c->buffered;
        c->buffered = 0;
        sd_event_source_set_enabled(c->source, SD_EVENT_OFF);
        for (Client **pp = &s->clients; *pp; pp = &(*pp)->next)
                if (*pp == c) {
                        *pp = c->next;
                        break;
                }
        s->n_clients--;
        c->next = s->dead;
        s->dead = c;
        if (s->reaper)
                sd_event_source_set_enabled(s->reaper, SD_EVENT_ONESHOT);
}

static Client *server_find_client(Server *s, uint64_t id)
{
        for (Client *c = s->clients; c; c = c->next)
                if (c->id == id)
                        return c;
        return NULL;
}

static int client_update_events(Client *c)
{
        return sd_event_source_set_io_events(c->source, (c->read_eof || c->backlog ? 0 : EPOLLIN) |
                                                                (c->out_len ? EPOLLOUT : 0));
}

static int client_flush(Client *c)
{
        while (c->out_start < c->out_len) {
                ssize_t n = send(c->fd, c->out + c->out_start, c->out_len - c->out_start,
                                 MSG_DONTWAIT | MSG_NOSIGNAL);
                if (n < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                break;
                        return -errno;
                }
                c->out_start += (size_t)n;
        }
        if (c->out_start == c->out_len)
                c->out_start = c->out_len = 0;
        if (c->read_eof && c->out_len == 0 && !c->backlog) {
                client_disconnect(c, "closed by peer");
                return 0;
        }
        return client_update_events(c);
}

/* Append one serialized message (the pieces one after the other) and its
 * ETX; try to send at once. */
static int client_queue_iov(Client *c, const struct iovec *iov, size_t n_iov)
{
        size_t n = 0;
        for (size_t i = 0; i < n_iov; i++)
                n += iov[i].iov_len;
        if (c->out_len - c->out_start + n + 1 > SERVER_OUTPUT_MAX) {
                client_disconnect(c, "output queue over its limit (the client does not read its replies)");
                return -ENOBUFS;
        }
        if (c->out_start > 0 && c->out_start == c->out_len)
                c->out_start = c->out_len = 0;
        if (c->out_len + n + 1 > c->out_alloc) {
                /* Compact before growing. */
                if (c->out_start > 0) {
                        memmove(c->out, c->out + c->out_start, c->out_len - c->out_start);
                        c->out_len -= c->out_start;
                        c->out_start = 0;
                }
                size_t want = MAX(c->out_alloc * 2, c->out_len + n + 1);
                char *p = realloc(c->out, want);
                if (!p)
                        return -ENOMEM;
                c->out = p;
                c->out_alloc = want;
        }
        for (size_t i = 0; i < n_iov; i++) {
                memcpy(c->out + c->out_len, iov[i].iov_base, iov[i].iov_len);
                c->out_len += iov[i].iov_len;
        }
        c->out[c->out_len++] = RPC_FRAME_ETX;

        int r = client_flush(c);
        if (r < 0)
                client_disconnect(c, "write failed");
        return r;
}

static int client_queue_text(Client *c, const char *text, size_t n)
{
        const struct iovec iov = { (void *)text, n };
        return client_queue_iov(c, &iov, 1);
}

static int client_queue(Client *c, json_t *message)
{
        _cleanup_free_ char *text = json_dumps(message, JSON_COMPACT);
        if (!text)
                return -ENOMEM;
        return client_queue_text(c, text, strlen(text));
}

void server_on_response(uint64_t client_id, json_t *response, void *userdata)
{
        Server *s = userdata;
        Client *c = server_find_client(s, client_id);

        if (!c)
                return; /* gone while the call was running */
        client_queue(c, response);
}

static void server_on_response_text(uint64_t client_id, const struct iovec *iov, size_t n_iov,
                                    void *userdata)
{
        Server *s = userdata;
        Client *c = server_find_client(s, client_id);

        if (!c)
                return;
        client_queue_iov(c, iov, n_iov);
}

void server_set_broadcast_hook(Server *s, ServerBroadcastHook hook, void *userdata)
{
        s->broadcast_hook = hook;
        s->broadcast_hook_userdata = userdata;
}

int server_broadcast(Server *s, const char *method, json_t *params)
{
        if (s->broadcast_hook) /* the Moonraker agent */
                s->broadcast_hook(method, params, s->broadcast_hook_userdata);
        json_auto_t *n = rpc_notification_new(method, params);
        if (!n)
                return -ENOMEM;
        /* Serialized once for every client. */
        _cleanup_free_ char *text = json_dumps(n, JSON_COMPACT);
        if (!text)
                return -ENOMEM;
        size_t len = strlen(text);
        for (Client *c = s->clients, *next; c; c = next) {
                next = c->next; /* c may be disconnected by the queue limit */
                if (c->identified)
                        client_queue_text(c, text, len);
        }
        return 0;
}

/* Keep Server.input_total equal to the sum of what the readers hold. */
static void client_account(Client *c)
{
        size_t now = rpc_frame_reader_pending(c->reader);
        c->server->input_total = c->server->input_total - c->buffered + now;
        c->buffered = now;
}

static void client_report_too_large(Client *c)
{
        char msg[256];
        json_auto_t *e = NULL;

        if (c->budget_drops > 0) {
                c->budget_drops--;
                snprintf(msg, sizeof(msg),
                         "request dropped: the daemon holds too much unfinished input from all clients "
                         "(at most %u bytes in total); send it again later",
                         SERVER_INPUT_TOTAL_MAX);
                e = rpc_error_response(NULL, RPC_ERROR_REQUEST_TOO_LARGE, msg,
                                       json_pack("{s:I}", "limit", (json_int_t)SERVER_INPUT_TOTAL_MAX));
        } else {
                snprintf(msg, sizeof(msg),
                         "request too large: a message may be at most %u bytes, or %u for job.flash or "
                         "rule.add with image.data; it was skipped",
                         SERVER_INPUT_SMALL_MAX, SERVER_INPUT_MAX);
                e = rpc_error_response(NULL, RPC_ERROR_REQUEST_TOO_LARGE, msg,
                                       json_pack("{s:I,s:I}", "limit", (json_int_t)SERVER_INPUT_SMALL_MAX,
                                                 "limit_image", (json_int_t)SERVER_INPUT_MAX));
        }
        if (e)
                client_queue(c, e);
}

/* The fd for message `seq`, if one came with its bytes (-EBADF if not). */
static int client_take_pending_fd(Client *c, uint64_t seq, size_t *ret_index)
{
        for (size_t i = 0; i < c->n_pending_fds; i++)
                if (c->pending_fds[i].first_seq <= seq && seq <= c->pending_fds[i].last_seq) {
                        *ret_index = i;
                        return TAKE_FD(c->pending_fds[i].fd);
                }
        return -EBADF;
}

/* Close fds that no message still to come may take. */
static void client_expire_pending_fds(Client *c, uint64_t done_seq)
{
        size_t k = 0;
        for (size_t i = 0; i < c->n_pending_fds; i++) {
                if (c->pending_fds[i].fd < 0 || c->pending_fds[i].last_seq <= done_seq) {
                        safe_close(c->pending_fds[i].fd);
                        continue;
                }
                c->pending_fds[k++] = c->pending_fds[i];
        }
        c->n_pending_fds = k;
}

static void client_set_backlog(Client *c, bool b)
{
        if (c->backlog == b)
                return;
        c->backlog = b;
        if (b)
                sd_event_source_set_enabled(c->server->backlog, SD_EVENT_ON);
        if (client_update_events(c) < 0)
                client_disconnect(c, "cannot watch the socket");
}

/* Handle at most SERVER_MESSAGES_PER_WAKEUP complete messages; the rest
 * waits for the next loop iteration (the backlog source), after every
 * other client's turn, and nothing more is read from this client until
 * then. */
static void client_process(Client *c)
{
        Server *s = c->server;

        for (unsigned handled = 0; !c->dead; handled++) {
                if (!rpc_frame_reader_ready(c->reader)) {
                        client_set_backlog(c, false);
                        break;
                }
                if (handled >= SERVER_MESSAGES_PER_WAKEUP) {
                        client_set_backlog(c, true);
                        break;
                }
                _cleanup_free_ char *frame = NULL;
                size_t len;
                uint64_t seq = rpc_frame_reader_head_seq(c->reader);
                int r = rpc_frame_reader_next(c->reader, &frame, &len);
                client_account(c);
                if (r == 0)
                        break;
                if (r == -EMSGSIZE) {
                        client_report_too_large(c);
                        client_expire_pending_fds(c, seq);
                        continue;
                }
                if (r < 0) {
                        client_disconnect(c, "out of memory");
                        break;
                }
                if (len == 0 || strspn(frame, " \t\r\n") == len) {
                        client_expire_pending_fds(c, seq);
                        continue; /* keep-alive blank frames */
                }
                size_t index = 0;
                int fd = client_take_pending_fd(c, seq, &index);
                r = rpc_dispatch_text_full(s->manager, &c->peer, c->id, frame, len, SERVER_INPUT_SMALL_MAX,
                                           &fd, server_on_response, s);
                if (fd >= 0 && !c->dead)
                        c->pending_fds[index].fd = TAKE_FD(fd); /* not this one's: the next may take it */
                safe_close(fd);
                if (r < 0) {
                        client_disconnect(c, "out of memory");
                        break;
                }
                if (!c->dead)
                        client_expire_pending_fds(c, seq);
        }
        if (!c->dead && c->read_eof && !c->backlog && c->out_len == 0)
                client_disconnect(c, "closed by peer");
}

static int on_backlog(sd_event_source *source, void *userdata)
{
        Server *s = userdata;
        bool more = false;

        /* Each client with a backlog gets one turn. Handling one may
         * disconnect others (a notification over their output limit), which
         * unlinks them: then start again from the head, skipping those that
         * had their turn already. */
        s->backlog_round++;
        for (Client *c = s->clients; c;) {
                if (!c->backlog || c->backlog_round == s->backlog_round) {
                        c = c->next;
                        continue;
                }
                c->backlog_round = s->backlog_round;
                Client *next = c->next;
                client_process(c);
                c = !next ? NULL : next->dead ? s->clients : next;
        }
        for (Client *c = s->clients; c && !more; c = c->next)
                more = c->backlog;
        if (!more)
                sd_event_source_set_enabled(source, SD_EVENT_OFF);
        return 0;
}

/* Over the total input limit: drop the largest unfinished message(s), the
 * attacker's or the big upload's, never complete small requests. */
static void server_enforce_input_total(Server *s)
{
        while (s->input_total > SERVER_INPUT_TOTAL_MAX) {
                Client *victim = NULL;
                for (Client *c = s->clients; c; c = c->next)
                        if (!victim ||
                            rpc_frame_reader_open_len(c->reader) > rpc_frame_reader_open_len(victim->reader))
                                victim = c;
                if (!victim || rpc_frame_reader_open_len(victim->reader) == 0)
                        return;
                log_warning("client %llu: dropping its unfinished message of %zu bytes: %zu bytes of input "
                            "buffered for all clients, at most %u",
                            (unsigned long long)victim->id, rpc_frame_reader_open_len(victim->reader),
                            s->input_total, SERVER_INPUT_TOTAL_MAX);
                if (rpc_frame_reader_discard_open(victim->reader) < 0) {
                        client_disconnect(victim, "out of memory");
                        continue;
                }
                victim->budget_drops++;
                client_account(victim);
                /* its error is sent from the backlog source */
                client_set_backlog(victim, true);
        }
}

static void client_add_fds(Client *c, struct msghdr *mh, uint64_t first_seq, uint64_t last_seq)
{
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
                if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
                        continue;
                size_t nfd = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (size_t k = 0; k < nfd; k++) {
                        int passed;
                        memcpy(&passed, CMSG_DATA(cm) + k * sizeof(int), sizeof(int));
                        if (first_seq > last_seq || c->n_pending_fds >= CLIENT_PENDING_FDS_MAX) {
                                /* no request starts in these bytes, or too many unclaimed fds */
                                log_debug("client %llu: closing a passed fd no request can take",
                                          (unsigned long long)c->id);
                                safe_close(passed);
                                continue;
                        }
                        c->pending_fds[c->n_pending_fds++] =
                                (PendingFd){ .fd = passed, .first_seq = first_seq, .last_seq = last_seq };
                }
        }
}

static int on_client_io(sd_event_source *source, int fd, uint32_t revents, void *userdata)
{
        Client *c = userdata;
        char buf[65536];

        if (revents & EPOLLOUT) {
                if (client_flush(c) < 0) {
                        client_disconnect(c, "write failed");
                        return 0;
                }
        }
        if (!(revents & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                return 0;
        /* One read per wakeup: the socket is level-triggered, so what is
         * left wakes us again after every other ready client had its turn;
         * a client that asks again the moment it has its answer cannot be
         * served twice while others wait (tail latency, tests/bench).
         * (do/while: the breaks below end this read.) */
        if (c->dead || c->backlog)
                return 0;
        do {
                union {
                        struct cmsghdr hdr;
                        char space[CMSG_SPACE(sizeof(int) * 4)];
                } control;
                struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
                struct msghdr mh = { .msg_iov = &iov,
                                     .msg_iovlen = 1,
                                     .msg_control = &control,
                                     .msg_controllen = sizeof(control) };
                ssize_t n = recvmsg(c->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
                if (n < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                break;
                        client_disconnect(c, "read failed");
                        break;
                }
                if (n == 0) {
                        /* A half-closed client (`nc -U`, socat) still waits
                         * for its replies: send what is queued, then close. */
                        c->read_eof = true;
                        if (client_flush(c) < 0)
                                client_disconnect(c, "write failed");
                        break;
                }
                /* The messages that start in these bytes: the open one if
                 * none of its bytes came before, up to the one open after. */
                uint64_t first_seq = rpc_frame_reader_open_seq(c->reader) +
                                     (rpc_frame_reader_mid_frame(c->reader) ? 1 : 0);
                /* -EMSGSIZE is reported through rpc_frame_reader_next(). */
                int r = rpc_frame_reader_feed(c->reader, buf, (size_t)n);
                uint64_t open_after = rpc_frame_reader_open_seq(c->reader);
                client_add_fds(c, &mh, first_seq,
                               rpc_frame_reader_mid_frame(c->reader) ? open_after : open_after - 1);
                client_account(c);
                if (r == -ENOMEM) {
                        client_disconnect(c, "out of memory");
                        break;
                }
                server_enforce_input_total(c->server);
                if (!c->dead)
                        client_process(c);
        } while (0);
        return 0;
}

/* Who is on the other end (logged), and whether it may call mutating methods. */
static void client_get_peer(Client *c)
{
        char buf[PEER_CRED_STRING_MAX];
        int r;

        c->peer = (RpcPeer){ .origin = "unix" };
        r = peer_cred_new_from_socket(&c->peer.cred, c->fd);
        if (r < 0) {
                log_warning_errno(r, "client %llu connected; no peer credentials: %m",
                                  (unsigned long long)c->id);
                return;
        }
        c->peer.has_credentials = true;
        c->peer.pid = c->peer.cred->pid;
        c->peer.uid = c->peer.cred->uid;
        c->peer.gid = c->peer.cred->gid;
        c->peer.may_mutate = peer_auth_may_mutate(c->peer.cred, c->server->flash_gid);
        log_info("client %llu connected: %s%s", (unsigned long long)c->id,
                 peer_cred_format(c->peer.cred, buf), c->peer.may_mutate ? "" : " (read-only)");
}

static void server_set_accepting(Server *s, bool on)
{
        for (size_t i = 0; i < s->n_listeners; i++)
                sd_event_source_set_enabled(s->listeners[i].source, on ? SD_EVENT_ON : SD_EVENT_OFF);
}

static int on_accept_timer(sd_event_source *source, uint64_t usec, void *userdata)
{
        server_set_accepting(userdata, true);
        return 0;
}

/* Out of fds: the pending connection stays queued and the listening
 * socket stays readable, so accepting again at once would spin. Stop
 * listening for a moment; clients that leave (or jobs that finish) give
 * fds back. (The timer exists from the start: arming it needs no fd.) */
static void server_pause_accepting(Server *s, int error)
{
        if (!s->accept_failure_logged)
                log_warning_errno(
                        error,
                        "cannot accept clients: %m (%zu clients connected); pausing for %u ms at a "
                        "time until it works again (not logged again until then)",
                        s->n_clients, SERVER_ACCEPT_PAUSE_MS);
        s->accept_failure_logged = true;
        if (!s->accept_timer ||
            sd_event_source_set_time_relative(s->accept_timer, SERVER_ACCEPT_PAUSE_MS * 1000ULL) < 0 ||
            sd_event_source_set_enabled(s->accept_timer, SD_EVENT_ONESHOT) < 0)
                return; /* better to spin than to stop listening for good */
        server_set_accepting(s, false);
}

static int on_accept(sd_event_source *source, int fd, uint32_t revents, void *userdata)
{
        Server *s = userdata;

        for (int i = 0; i < 64; i++) {
                _cleanup_close_ int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (cfd < 0) {
                        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                                server_pause_accepting(s, -errno);
                        else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                                log_warning_errno(-errno, "accept failed: %m");
                        return 0;
                }
                if (s->n_clients >= s->clients_max) {
                        if (!s->refusing_logged)
                                log_warning("refusing clients: %zu connected, at most %zu (not logged again "
                                            "until there is room)",
                                            s->n_clients, s->clients_max);
                        s->refusing_logged = true;
                        continue;
                }
                s->refusing_logged = false;
                if (s->accept_failure_logged) {
                        log_info("accepting clients again");
                        s->accept_failure_logged = false;
                }
                Client *c = calloc(1, sizeof(*c));
                if (!c)
                        return log_oom();
                c->server = s;
                c->id = ++s->next_id;
                c->fd = TAKE_FD(cfd);
                if (rpc_frame_reader_new(&c->reader, SERVER_INPUT_MAX) < 0 ||
                    sd_event_add_io(manager_get_event(s->manager), &c->source, c->fd, EPOLLIN, on_client_io,
                                    c) < 0) {
                        client_free(c);
                        return log_oom();
                }
                rpc_frame_reader_set_small_limit(c->reader, SERVER_INPUT_SMALL_MAX,
                                                 SERVER_INPUT_LARGE_TOKENS);
                client_get_peer(c);
                c->next = s->clients;
                s->clients = c;
                s->n_clients++;
        }
        return 0;
}

/* Clients may use at most half of the fds: jobs must always be able to
 * open devices, images and state files. */
static size_t server_clients_max(void)
{
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
                return SERVER_CLIENTS_MAX;
        return MAX(1u, MIN((size_t)SERVER_CLIENTS_MAX, (size_t)rl.rlim_cur / 2));
}

void server_raise_fd_limit(void)
{
        struct rlimit rl;

        /* Every fd we use is > 1023-safe (no select()). */
        if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max)
                return;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
                log_debug_errno(-errno, "cannot raise the fd limit: %m");
}

int server_new(Server **ret, Manager *m)
{
        Server *s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->manager = m;
        s->flash_gid = (gid_t)-1;
        s->clients_max = server_clients_max();
        /* the same function for every server: registering it again is a no-op */
        int k = rpc_response_text_func_add(server_on_response, server_on_response_text);
        if (k < 0) {
                free(s);
                return k;
        }
        const char *group = m->config ? m->config->flash_group : NULL;
        if (group && group[0] && peer_auth_lookup_group(group, &s->flash_gid) < 0) {
                log_info("flash_group %s does not exist: only root and flashd's own user may flash", group);
                s->flash_gid = (gid_t)-1;
        }
        if (manager_get_event(m)) {
                int r = sd_event_add_defer(manager_get_event(m), &s->reaper, on_reap, s);
                if (r < 0) {
                        free(s);
                        return r;
                }
                sd_event_source_set_enabled(s->reaper, SD_EVENT_OFF);
                r = sd_event_add_defer(manager_get_event(m), &s->backlog, on_backlog, s);
                if (r < 0) {
                        sd_event_source_disable_unref(s->reaper);
                        free(s);
                        return r;
                }
                sd_event_source_set_enabled(s->backlog, SD_EVENT_OFF);
                r = sd_event_add_time_relative(manager_get_event(m), &s->accept_timer, CLOCK_MONOTONIC,
                                               SERVER_ACCEPT_PAUSE_MS * 1000ULL, 0, on_accept_timer, s);
                if (r < 0) {
                        sd_event_source_disable_unref(s->backlog);
                        sd_event_source_disable_unref(s->reaper);
                        free(s);
                        return r;
                }
                sd_event_source_set_enabled(s->accept_timer, SD_EVENT_OFF);
        }
        *ret = s;
        return 0;
}

Server *server_free(Server *s)
{
        if (!s)
                return NULL;
        while (s->clients)
                client_disconnect(s->clients, "server stopping");
        on_reap(NULL, s);
        sd_event_source_disable_unref(s->reaper);
        sd_event_source_disable_unref(s->backlog);
        sd_event_source_disable_unref(s->accept_timer);
        for (size_t i = 0; i < s->n_listeners; i++) {
                sd_event_source_disable_unref(s->listeners[i].source);
                safe_close(s->listeners[i].fd);
        }
        free(s->listeners);
        if (s->unlink_path) {
                unlink(s->unlink_path);
                free(s->unlink_path);
        }
        free(s);
        return NULL;
}

int server_add_listen_fd(Server *s, int fd)
{
        Listener *l = realloc(s->listeners, (s->n_listeners + 1) * sizeof(*l));
        if (!l)
                return -ENOMEM;
        s->listeners = l;
        l = &l[s->n_listeners];
        *l = (Listener){ .fd = fd };
        int flags = fcntl(fd, F_GETFL);
        if (flags >= 0)
                fcntl(fd, F_SETFL, flags | O_NONBLOCK);
        int r = sd_event_add_io(manager_get_event(s->manager), &l->source, fd, EPOLLIN, on_accept, s);
        if (r < 0)
                return r;
        s->n_listeners++;
        return 0;
}

int server_listen_path(Server *s, const char *path, const char *group)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int r;

        if (strlen(path) >= sizeof(sa.sun_path))
                return log_error_errno(-ENAMETOOLONG, "socket path too long: %s", path);
        memcpy(sa.sun_path, path, strlen(path));

        r = mkdir_parents(path);
        if (r < 0)
                return log_error_errno(r, "cannot create the directory of %s: %m", path);

        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return log_error_errno(-errno, "socket(): %m");

        /* A socket file left by a crashed instance: unlink it, but only if
         * nobody answers on it (two daemons must not share a path). */
        struct stat st;
        if (lstat(path, &st) == 0) {
                if (!S_ISSOCK(st.st_mode))
                        return log_error_errno(-EEXIST, "%s exists and is not a socket", path);
                _cleanup_close_ int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0)
                        return log_error_errno(-EADDRINUSE, "another flashd is listening on %s", path);
                unlink(path);
        }

        /* Bind with a restrictive umask so the socket never exists wider than 0660. */
        mode_t old = umask(0117);
        r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
        umask(old);
        if (r < 0)
                return log_error_errno(-errno, "cannot bind %s: %m", path);
        if (chmod(path, 0660) < 0)
                log_warning_errno(-errno, "chmod %s: %m", path);
        if (group && group[0]) {
                struct group *g = getgrnam(group);
                if (!g)
                        log_info("group %s does not exist; %s keeps group %u", group, path,
                                 (unsigned)getegid());
                else if (chown(path, (uid_t)-1, g->gr_gid) < 0)
                        log_warning_errno(-errno, "cannot give %s to group %s: %m", path, group);
        }
        if (listen(fd, SOMAXCONN) < 0)
                return log_error_errno(-errno, "listen on %s: %m", path);

        free(s->unlink_path);
        s->unlink_path = strdup(path);
        r = server_add_listen_fd(s, fd);
        if (r < 0)
                return log_error_errno(r, "cannot watch %s: %m", path);
        TAKE_FD(fd);
        log_info("listening on %s", path);
        return 0;
}

size_t server_n_clients(const Server *s)
{
        return s->n_clients;
}

int server_identify_client(Server *s, uint64_t client_id, const char *name, const char *version,
                           const char *type, const char *url)
{
        Client *c = server_find_client(s, client_id);
        if (!c)
                return -ENOENT;
        c->identified = true;
        free(c->name);
        free(c->version);
        free(c->type);
        free(c->url);
        c->name = name ? strdup(name) : NULL;
        c->version = version ? strdup(version) : NULL;
        c->type = type ? strdup(type) : NULL;
        c->url = url ? strdup(url) : NULL;
        log_info("client %llu identified as %s %s (%s)", (unsigned long long)c->id, strna(name),
                 strna(version), strna(type));
        return 0;
}
