/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "fs-util.h"
#include "log.h"
#include "macros.h"
#include "manager.h"
#include "server/peer-auth.h"
#include "server/rpc.h"
#include "server/server.h"

typedef struct Client Client;

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
        /* An fd passed with SCM_RIGHTS, for the next request dispatched
         * (flashctl sends it with the request's first bytes; jobs helper). */
        int pending_fd;
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
        uint64_t next_id;
        char *unlink_path;                  /* socket we created and remove again */
        gid_t flash_gid;                    /* members may mutate; (gid_t)-1: no such group */
        ServerBroadcastHook broadcast_hook; /* the Moonraker agent (issue 8) */
        void *broadcast_hook_userdata;
};

static Client *client_free(Client *c)
{
        if (!c)
                return NULL;
        sd_event_source_disable_unref(c->source);
        safe_close(c->fd);
        safe_close(c->pending_fd);
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
        if (c->read_eof && c->out_len == 0) {
                client_disconnect(c, "closed by peer");
                return 0;
        }
        return sd_event_source_set_io_events(c->source,
                                             (c->read_eof ? 0 : EPOLLIN) | (c->out_len ? EPOLLOUT : 0));
}

/* Append one serialized message and its ETX; try to send at once. */
static int client_queue_text(Client *c, const char *text, size_t n)
{
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
        memcpy(c->out + c->out_len, text, n);
        c->out[c->out_len + n] = RPC_FRAME_ETX;
        c->out_len += n + 1;

        int r = client_flush(c);
        if (r < 0)
                client_disconnect(c, "write failed");
        return r;
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

void server_set_broadcast_hook(Server *s, ServerBroadcastHook hook, void *userdata)
{
        s->broadcast_hook = hook;
        s->broadcast_hook_userdata = userdata;
}

int server_broadcast(Server *s, const char *method, json_t *params)
{
        if (s->broadcast_hook) /* the Moonraker agent (issue 8) */
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

static void client_process(Client *c)
{
        Server *s = c->server;

        while (!c->dead) {
                _cleanup_free_ char *frame = NULL;
                size_t len;
                int r = rpc_frame_reader_next(c->reader, &frame, &len);
                if (r == 0)
                        break;
                if (r == -EMSGSIZE) {
                        char msg[160];
                        snprintf(msg, sizeof(msg),
                                 "Request too large: a message may be at most %u bytes; it was skipped",
                                 SERVER_INPUT_MAX);
                        json_auto_t *e = rpc_error_response(
                                NULL, RPC_ERROR_REQUEST_TOO_LARGE, msg,
                                json_pack("{s:I}", "limit", (json_int_t)SERVER_INPUT_MAX));
                        if (e)
                                client_queue(c, e);
                        continue;
                }
                if (r < 0) {
                        client_disconnect(c, "out of memory");
                        break;
                }
                if (len == 0 || strspn(frame, " \t\r\n") == len)
                        continue; /* keep-alive blank frames */
                r = rpc_dispatch_text_with_fd(s->manager, &c->peer, c->id, frame, len,
                                              TAKE_FD(c->pending_fd), server_on_response, s);
                if (r < 0)
                        client_disconnect(c, "out of memory");
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
        if (c->dead)
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
                /* Keep the last fd received; it belongs to the request whose
                 * first bytes came with it (the kernel does not merge a message
                 * carrying fds with earlier data in one read). */
                for (struct cmsghdr *cm = n > 0 ? CMSG_FIRSTHDR(&mh) : NULL; cm; cm = CMSG_NXTHDR(&mh, cm))
                        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
                                size_t nfd = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                                for (size_t k = 0; k < nfd; k++) {
                                        int passed;
                                        memcpy(&passed, CMSG_DATA(cm) + k * sizeof(int), sizeof(int));
                                        safe_close(c->pending_fd);
                                        c->pending_fd = passed;
                                }
                        }
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
                /* -EMSGSIZE is reported through rpc_frame_reader_next(). */
                int r = rpc_frame_reader_feed(c->reader, buf, (size_t)n);
                if (r == -ENOMEM) {
                        client_disconnect(c, "out of memory");
                        break;
                }
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

static int on_accept(sd_event_source *source, int fd, uint32_t revents, void *userdata)
{
        Server *s = userdata;

        for (int i = 0; i < 64; i++) {
                _cleanup_close_ int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (cfd < 0) {
                        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                                log_warning_errno(-errno, "accept failed: %m");
                        return 0;
                }
                if (s->n_clients >= SERVER_CLIENTS_MAX) {
                        log_warning("refusing a client: %u clients connected", SERVER_CLIENTS_MAX);
                        continue;
                }
                Client *c = calloc(1, sizeof(*c));
                if (!c)
                        return log_oom();
                c->server = s;
                c->id = ++s->next_id;
                c->pending_fd = -EBADF;
                c->fd = TAKE_FD(cfd);
                if (rpc_frame_reader_new(&c->reader, SERVER_INPUT_MAX) < 0 ||
                    sd_event_add_io(manager_get_event(s->manager), &c->source, c->fd, EPOLLIN, on_client_io,
                                    c) < 0) {
                        client_free(c);
                        return log_oom();
                }
                client_get_peer(c);
                c->next = s->clients;
                s->clients = c;
                s->n_clients++;
        }
        return 0;
}

int server_new(Server **ret, Manager *m)
{
        Server *s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->manager = m;
        s->flash_gid = (gid_t)-1;
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
