/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "rpc-client.h"
#include "rpc-frame.h"

struct RpcClient {
        int fd;
        RpcFrameReader *reader;
        int64_t next_id;
        uint64_t timeout_usec;
        /* notifications received while a call waited, oldest first */
        json_t *queue;
        RpcNotifyFunc notify;
        void *userdata;
};

/* Replies larger than this are a broken daemon, not data (a device list is
 * a few KiB); the frame codec drops them without growing without bound. */
#define RPC_CLIENT_MAX_FRAME  (16u * 1024u * 1024u)
#define RPC_CLIENT_READ_CHUNK 65536

void rpc_client_error_done(RpcClientError *e)
{
        if (!e)
                return;
        free(e->message);
        e->message = NULL;
        json_decref(e->data);
        e->data = NULL;
        e->code = 0;
}

static uint64_t now_usec(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t deadline_after(uint64_t timeout_usec)
{
        uint64_t n = now_usec();
        if (timeout_usec == UINT64_MAX || timeout_usec > UINT64_MAX - n)
                return UINT64_MAX;
        return n + timeout_usec;
}

/* poll(2) timeout in ms until `deadline`, rounded up; -1 for none. */
static int poll_timeout(uint64_t deadline)
{
        if (deadline == UINT64_MAX)
                return -1;
        uint64_t n = now_usec();
        if (n >= deadline)
                return 0;
        uint64_t ms = (deadline - n + 999) / 1000;
        return ms > INT_MAX ? INT_MAX : (int)ms;
}

int rpc_client_connect(RpcClient **ret, const char *path, uint64_t timeout_usec)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        size_t len = strlen(path);
        socklen_t salen;
        _cleanup_close_ int fd = -EBADF;

        if (len == 0 || len >= sizeof(sa.sun_path))
                return -EINVAL;
        memcpy(sa.sun_path, path, len);
        salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (path[0] == '@' ? 0 : 1));
        if (path[0] == '@')
                sa.sun_path[0] = '\0';

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return negative_errno();

        /* A blocking connect to a Unix socket waits while the listen
         * backlog is full; SO_SNDTIMEO bounds that wait. */
        if (timeout_usec == 0)
                timeout_usec = RPC_CLIENT_TIMEOUT_DEFAULT;
        if (timeout_usec != UINT64_MAX) {
                struct timeval tv = {
                        .tv_sec = (time_t)(timeout_usec / 1000000u),
                        .tv_usec = (suseconds_t)(timeout_usec % 1000000u),
                };
                if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
                        return negative_errno();
        }
        if (connect(fd, (struct sockaddr *)&sa, salen) < 0)
                return errno == EAGAIN || errno == EINPROGRESS ? -ETIMEDOUT : negative_errno();

        /* From here on every wait goes through poll() with a deadline. */
        int flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
                return negative_errno();

        RpcClient *c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->fd = -EBADF;
        c->next_id = 1;
        c->timeout_usec = RPC_CLIENT_TIMEOUT_DEFAULT;
        c->queue = json_array();
        int r = c->queue ? rpc_frame_reader_new(&c->reader, RPC_CLIENT_MAX_FRAME) : -ENOMEM;
        if (r < 0) {
                rpc_client_free(c);
                return r;
        }
        c->fd = TAKE_FD(fd);
        *ret = c;
        return 0;
}

RpcClient *rpc_client_free(RpcClient *c)
{
        if (!c)
                return NULL;
        safe_close(c->fd);
        rpc_frame_reader_free(c->reader);
        json_decref(c->queue);
        free(c);
        return NULL;
}

void rpc_client_set_timeout(RpcClient *c, uint64_t timeout_usec)
{
        c->timeout_usec = timeout_usec ? timeout_usec : RPC_CLIENT_TIMEOUT_DEFAULT;
}

void rpc_client_set_notify(RpcClient *c, RpcNotifyFunc callback, void *userdata)
{
        c->notify = callback;
        c->userdata = userdata;
}

int rpc_client_get_fd(const RpcClient *c)
{
        return c->fd;
}

static int wait_fd(int fd, short events, uint64_t deadline)
{
        struct pollfd p = { .fd = fd, .events = events };

        for (;;) {
                int n = poll(&p, 1, poll_timeout(deadline));
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (n == 0)
                        return -ETIMEDOUT;
                return 0;
        }
}

/* Write all of buf; attach `pass_fd` (>= 0) to the first bytes that go out. */
static int send_all(RpcClient *c, const char *buf, size_t len, int pass_fd, uint64_t deadline)
{
        while (len > 0) {
                struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
                struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
                union {
                        struct cmsghdr align;
                        char buf[CMSG_SPACE(sizeof(int))];
                } control = {};

                if (pass_fd >= 0) {
                        mh.msg_control = control.buf;
                        mh.msg_controllen = sizeof(control.buf);
                        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
                        cm->cmsg_level = SOL_SOCKET;
                        cm->cmsg_type = SCM_RIGHTS;
                        cm->cmsg_len = CMSG_LEN(sizeof(int));
                        memcpy(CMSG_DATA(cm), &pass_fd, sizeof(int));
                }

                ssize_t n = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN) {
                                int r = wait_fd(c->fd, POLLOUT, deadline);
                                if (r < 0)
                                        return r;
                                continue;
                        }
                        if (errno == EPIPE)
                                return -ECONNRESET;
                        return negative_errno();
                }
                /* The fd went with these bytes; never send it twice. */
                pass_fd = -EBADF;
                buf += n;
                len -= (size_t)n;
        }
        return 0;
}

/* Read what is available (the socket is readable). 0 on data, -ECONNRESET on EOF. */
static int read_some(RpcClient *c)
{
        char buf[RPC_CLIENT_READ_CHUNK];

        for (;;) {
                ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                return 0;
                        if (errno == ECONNRESET)
                                return -ECONNRESET;
                        return negative_errno();
                }
                if (n == 0)
                        return -ECONNRESET;
                int r = rpc_frame_reader_feed(c->reader, buf, (size_t)n);
                if (r < 0 && r != -EMSGSIZE)
                        return r;
                /* An oversized frame is reported by rpc_frame_reader_next(). */
                return 0;
        }
}

/*
 * Take the next complete message out of the reader: returns 1 and a parsed
 * object, 0 when none is buffered.
 */
static int next_message(RpcClient *c, json_t **ret)
{
        _cleanup_free_ char *frame = NULL;
        size_t len;
        json_error_t err;

        int r = rpc_frame_reader_next(c->reader, &frame, &len);
        if (r == -EMSGSIZE)
                return -EBADMSG;
        if (r <= 0)
                return r;

        json_t *m = json_loadb(frame, len, 0, &err);
        if (!m || !json_is_object(m)) {
                json_decref(m);
                return -EBADMSG;
        }
        *ret = m;
        return 1;
}

static bool is_notification(const json_t *m)
{
        return json_is_string(json_object_get(m, "method")) && !json_object_get(m, "id");
}

static int queue_notification(RpcClient *c, json_t *m)
{
        return json_array_append(c->queue, m) < 0 ? -ENOMEM : 0;
}

/*
 * The next buffered message that is not a notification (those are queued
 * for rpc_client_run()): returns 1 and the message, 0 when none is buffered.
 */
static int next_non_notification(RpcClient *c, json_t **ret)
{
        for (;;) {
                json_t *m = NULL;
                int r = next_message(c, &m);
                if (r <= 0)
                        return r;
                if (!is_notification(m)) {
                        *ret = m;
                        return 1;
                }
                r = queue_notification(c, m);
                json_decref(m);
                if (r < 0)
                        return r;
        }
}

static int parse_response(json_t *m, json_t **ret_result, RpcClientError *ret_error)
{
        json_t *result = json_object_get(m, "result");
        json_t *error = json_object_get(m, "error");

        if (!streq_ptr(json_string_value(json_object_get(m, "jsonrpc")), "2.0"))
                return -EBADMSG;

        if (error) {
                json_t *code = json_object_get(error, "code");
                const char *message = json_string_value(json_object_get(error, "message"));
                if (!json_is_integer(code))
                        return -EBADMSG;
                if (ret_error) {
                        char *s = strdup(message ? message : "unknown error");
                        if (!s)
                                return -ENOMEM;
                        json_t *data = json_object_get(error, "data");
                        *ret_error = (RpcClientError){
                                .code = json_integer_value(code),
                                .message = s,
                                .data = data ? json_incref(data) : NULL,
                        };
                }
                return -EREMOTEIO;
        }
        if (!result)
                return -EBADMSG;
        if (ret_result)
                *ret_result = json_incref(result);
        return 0;
}

static int call_internal(RpcClient *c, const char *method, json_t *params, int pass_fd,
                         uint64_t timeout_usec, json_t **ret_result, RpcClientError *ret_error)
{
        int64_t id = c->next_id++;
        uint64_t deadline = deadline_after(timeout_usec ? timeout_usec : c->timeout_usec);
        json_auto_t *req =
                json_pack("{s:s, s:s, s:I}", "jsonrpc", "2.0", "method", method, "id", (json_int_t)id);
        if (!req)
                return -ENOMEM;
        if (params && json_object_set(req, "params", params) < 0)
                return -ENOMEM;

        _cleanup_free_ char *text = json_dumps(req, JSON_COMPACT);
        if (!text)
                return -ENOMEM;
        size_t len = strlen(text);
        char *framed = realloc(text, len + 1);
        if (!framed)
                return -ENOMEM;
        text = framed;
        text[len] = RPC_FRAME_ETX;

        int r = send_all(c, text, len + 1, pass_fd, deadline);
        if (r < 0)
                return r;

        for (;;) {
                json_t *m = NULL;

                r = next_non_notification(c, &m);
                if (r < 0)
                        return r;
                if (r == 0) {
                        r = wait_fd(c->fd, POLLIN, deadline);
                        if (r < 0)
                                return r;
                        r = read_some(c);
                        if (r < 0)
                                return r;
                        continue;
                }

                json_auto_t *msg = m;
                json_t *mid = json_object_get(msg, "id");
                /* An answer to an earlier call that timed out: not ours. */
                if (json_is_integer(mid) && json_integer_value(mid) != id)
                        continue;
                /* JSON-RPC answers a request it could not parse with id null. */
                if (!json_is_integer(mid) && !json_is_null(mid))
                        continue;
                return parse_response(msg, ret_result, ret_error);
        }
}

int rpc_client_call(RpcClient *c, const char *method, json_t *params, uint64_t timeout_usec,
                    json_t **ret_result, RpcClientError *ret_error)
{
        return call_internal(c, method, params, -EBADF, timeout_usec, ret_result, ret_error);
}

int rpc_client_call_with_fd(RpcClient *c, const char *method, json_t *params, int fd, uint64_t timeout_usec,
                            json_t **ret_result, RpcClientError *ret_error)
{
        if (fd < 0)
                return -EBADF;
        return call_internal(c, method, params, fd, timeout_usec, ret_result, ret_error);
}

int rpc_client_identify(RpcClient *c, const char *client_name, const char *version)
{
        json_auto_t *params = json_pack("{s:s, s:s, s:s}", "client_name", client_name, "version", version,
                                        "type", "other");
        if (!params)
                return -ENOMEM;
        json_auto_t *result = NULL;
        return rpc_client_call(c, "server.connection.identify", params, 0, &result, NULL);
}

/* Hand queued notifications to the callback; returns its first non-zero answer. */
static int dispatch_queue(RpcClient *c)
{
        while (json_array_size(c->queue) > 0) {
                json_auto_t *m = json_incref(json_array_get(c->queue, 0));
                json_array_remove(c->queue, 0);
                if (!c->notify)
                        continue;
                json_t *params = json_object_get(m, "params");
                int r = c->notify(c, json_string_value(json_object_get(m, "method")), params, c->userdata);
                if (r != 0)
                        return r;
        }
        return 0;
}

int rpc_client_run(RpcClient *c, uint64_t timeout_usec, int interrupt_fd)
{
        uint64_t deadline = deadline_after(timeout_usec);

        for (;;) {
                int r = dispatch_queue(c);
                if (r != 0)
                        return r;

                /* Take every complete message already buffered before
                 * sleeping; stale answers to timed-out calls are dropped. */
                json_t *m = NULL;
                r = next_non_notification(c, &m);
                if (r < 0)
                        return r;
                if (r > 0) {
                        json_decref(m);
                        continue;
                }
                /* Notifications just queued are delivered before sleeping. */
                if (json_array_size(c->queue) > 0)
                        continue;

                struct pollfd p[2] = {
                        { .fd = c->fd, .events = POLLIN },
                        { .fd = interrupt_fd, .events = POLLIN },
                };
                int n = poll(p, interrupt_fd >= 0 ? 2 : 1, poll_timeout(deadline));
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (n == 0)
                        return 0;
                if (interrupt_fd >= 0 && p[1].revents)
                        return -EINTR;
                r = read_some(c);
                if (r < 0)
                        return r;
        }
}
