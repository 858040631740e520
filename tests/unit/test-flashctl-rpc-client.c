/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * flashctl's RPC client against a scripted peer on a real Unix socket:
 * results, JSON-RPC errors, notifications queued during a call, a file
 * descriptor passed with the request, timeouts and stale replies, EOF.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/macros.h"
#include "rpc-client.h"
#include "rpc-frame.h"
#include "tests.h"

static char sock_path[108];
static int listen_fd = -1;

static void send_json(int fd, json_t *m)
{
        char *s = json_dumps(m, JSON_COMPACT);
        size_t n = strlen(s);
        s = realloc(s, n + 1);
        s[n] = RPC_FRAME_ETX;
        CHECK(send(fd, s, n + 1, MSG_NOSIGNAL) == (ssize_t)(n + 1));
        free(s);
        json_decref(m);
}

/* The scripted peer: answers by method name (see each case in main()). */
static void *server(void *arg)
{
        int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
        RpcFrameReader *r = NULL;
        json_int_t silent_id = -1;
        int pending_fd = -1;

        CHECK(fd >= 0);
        rpc_frame_reader_new(&r, 0);
        for (;;) {
                char buf[4096];
                union {
                        struct cmsghdr align;
                        char b[CMSG_SPACE(sizeof(int))];
                } control;
                struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
                struct msghdr mh = {
                        .msg_iov = &iov,
                        .msg_iovlen = 1,
                        .msg_control = control.b,
                        .msg_controllen = sizeof(control.b),
                };
                ssize_t n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
                if (n <= 0)
                        break;
                struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
                if (cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
                        memcpy(&pending_fd, CMSG_DATA(cm), sizeof(int));
                rpc_frame_reader_feed(r, buf, (size_t)n);

                char *frame;
                while (rpc_frame_reader_next(r, &frame, NULL) == 1) {
                        json_t *req = json_loads(frame, 0, NULL);
                        free(frame);
                        const char *method = json_string_value(json_object_get(req, "method"));
                        json_t *id = json_object_get(req, "id");
                        CHECK(method && json_is_integer(id));
                        CHECK_STR(json_string_value(json_object_get(req, "jsonrpc")), "2.0");

                        if (silent_id >= 0) {
                                /* the late answer to the call that timed out */
                                send_json(fd, json_pack("{s:s, s:I, s:s}", "jsonrpc", "2.0", "id", silent_id,
                                                        "result", "stale"));
                                silent_id = -1;
                        }
                        if (streq(method, "echo"))
                                send_json(fd,
                                          json_pack("{s:s, s:O, s:O}", "jsonrpc", "2.0", "id", id, "result",
                                                    json_object_get(req, "params")
                                                            ? json_object_get(req, "params")
                                                            : json_null()));
                        else if (streq(method, "fail"))
                                send_json(fd,
                                          json_pack("{s:s, s:O, s:{s:i, s:s, s:{s:s}}}", "jsonrpc", "2.0",
                                                    "id", id, "error", "code", -32004, "message",
                                                    "no device 'x'", "data", "name", "device_not_found"));
                        else if (streq(method, "notify_then_reply")) {
                                for (int i = 1; i <= 3; i++)
                                        send_json(fd, json_pack("{s:s, s:s, s:[i]}", "jsonrpc", "2.0",
                                                                "method", "notify_test", "params", i));
                                send_json(fd, json_pack("{s:s, s:O, s:b}", "jsonrpc", "2.0", "id", id,
                                                        "result", 1));
                        } else if (streq(method, "reply_then_notify")) {
                                /* notifications that come while the client sleeps in rpc_client_run() */
                                send_json(fd, json_pack("{s:s, s:O, s:b}", "jsonrpc", "2.0", "id", id,
                                                        "result", 1));
                                usleep(50000);
                                for (int i = 1; i <= 3; i++) {
                                        send_json(fd, json_pack("{s:s, s:s, s:[i]}", "jsonrpc", "2.0",
                                                                "method", "notify_test", "params", i));
                                        usleep(10000);
                                }
                        } else if (streq(method, "with_fd")) {
                                /* The fd must have come with this request's bytes. */
                                char content[64] = "";
                                if (pending_fd >= 0) {
                                        ssize_t k = pread(pending_fd, content, sizeof(content) - 1, 0);
                                        content[k > 0 ? k : 0] = '\0';
                                        close(pending_fd);
                                        pending_fd = -1;
                                }
                                send_json(fd, json_pack("{s:s, s:O, s:s}", "jsonrpc", "2.0", "id", id,
                                                        "result", content));
                        } else if (streq(method, "silent"))
                                silent_id = json_integer_value(id);
                        else if (streq(method, "bye")) {
                                json_decref(req);
                                goto out;
                        }
                        json_decref(req);
                }
        }
out:
        rpc_frame_reader_free(r);
        close(fd);
        return NULL;
}

static int on_notify(RpcClient *c, const char *method, json_t *params, void *userdata)
{
        int *seen = userdata;
        CHECK_STR(method, "notify_test");
        CHECK_INT(json_integer_value(json_array_get(params, 0)), *seen + 1);
        (*seen)++;
        return *seen == 3 ? 42 : 0;
}

int main(void)
{
        static const struct {
                const char *method;
                const char *params; /* JSON */
                int ret;
                const char *result; /* JSON, compact */
                int64_t error_code;
        } calls[] = {
                { "echo", "{\"a\":1}", 0, "{\"a\":1}", 0 },
                { "echo", NULL, 0, NULL, 0 }, /* no params: the peer echoes a missing member */
                { "fail", NULL, -EREMOTEIO, NULL, -32004 },
                { "echo", "[1,2]", 0, "[1,2]", 0 },
        };
        char tmpl[] = "/tmp/test-rpc-client-XXXXXX";
        pthread_t t;
        RpcClient *c = NULL;

        CHECK(mkdtemp(tmpl) != NULL);
        snprintf(sock_path, sizeof(sock_path), "%s/s", tmpl);

        /* nobody listening yet */
        CHECK_INT(rpc_client_connect(&c, sock_path, 0), -ENOENT);

        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        strcpy(sa.sun_path, sock_path);
        listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        CHECK(bind(listen_fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
        CHECK(listen(listen_fd, 4) == 0);
        pthread_create(&t, NULL, server, NULL);

        CHECK_INT(rpc_client_connect(&c, sock_path, 0), 0);

        for (size_t i = 0; i < ELEMENTSOF(calls); i++) {
                json_t *params = calls[i].params ? json_loads(calls[i].params, 0, NULL) : NULL;
                json_t *result = NULL;
                RpcClientError e = {};
                int r = rpc_client_call(c, calls[i].method, params, 0, &result, &e);
                CHECK_INT(r, calls[i].ret);
                if (r == 0 && calls[i].result) {
                        char *s = json_dumps(result, JSON_COMPACT | JSON_ENCODE_ANY);
                        CHECK_STR(s, calls[i].result);
                        free(s);
                } else if (r == 0)
                        CHECK(json_is_null(result) || !result);
                if (r == -EREMOTEIO) {
                        CHECK_INT(e.code, calls[i].error_code);
                        CHECK_STR(e.message, "no device 'x'");
                        CHECK_STR(json_string_value(json_object_get(e.data, "name")), "device_not_found");
                }
                rpc_client_error_done(&e);
                json_decref(result);
                json_decref(params);
        }

        /* Notifications that come before the reply wait for rpc_client_run(),
         * in order; the callback's non-zero answer ends the run. */
        int seen = 0;
        json_t *result = NULL;
        rpc_client_set_notify(c, on_notify, &seen);
        CHECK_INT(rpc_client_call(c, "notify_then_reply", NULL, 0, &result, NULL), 0);
        CHECK(json_is_true(result));
        json_decref(result);
        CHECK_INT(seen, 0);
        CHECK_INT(rpc_client_run(c, 1000000, -1), 42);
        CHECK_INT(seen, 3);
        /* nothing more arrives: the run times out with 0 */
        CHECK_INT(rpc_client_run(c, 50000, -1), 0);

        /* Notifications that arrive while rpc_client_run() waits, one or
         * several per read, are delivered as they come. */
        seen = 0;
        result = NULL;
        CHECK_INT(rpc_client_call(c, "reply_then_notify", NULL, 0, &result, NULL), 0);
        json_decref(result);
        CHECK_INT(rpc_client_run(c, 2000000, -1), 42);
        CHECK_INT(seen, 3);

        /* An interrupt fd ends the run with -EINTR. */
        int pipefd[2];
        CHECK(pipe2(pipefd, O_CLOEXEC) == 0);
        CHECK(write(pipefd[1], "x", 1) == 1);
        CHECK_INT(rpc_client_run(c, UINT64_MAX, pipefd[0]), -EINTR);
        close(pipefd[0]);
        close(pipefd[1]);

        /* A file descriptor travels with the request. */
        char fpath[128];
        snprintf(fpath, sizeof(fpath), "%s/image", tmpl);
        FILE *f = fopen(fpath, "we");
        fputs("firmware bytes", f);
        fclose(f);
        int imgfd = open(fpath, O_RDONLY | O_CLOEXEC);
        result = NULL;
        CHECK_INT(rpc_client_call_with_fd(c, "with_fd", NULL, imgfd, 0, &result, NULL), 0);
        CHECK_STR(json_string_value(result), "firmware bytes");
        json_decref(result);
        CHECK_INT(rpc_client_call_with_fd(c, "with_fd", NULL, -1, 0, NULL, NULL), -EBADF);
        /* the caller keeps its fd */
        CHECK(fcntl(imgfd, F_GETFD) >= 0);
        close(imgfd);
        unlink(fpath);

        /* No answer: -ETIMEDOUT in time; the late answer is not taken for the next call's. */
        CHECK_INT(rpc_client_call(c, "silent", NULL, 100000, NULL, NULL), -ETIMEDOUT);
        json_t *p = json_pack("{s:s}", "x", "fresh");
        result = NULL;
        CHECK_INT(rpc_client_call(c, "echo", p, 0, &result, NULL), 0);
        CHECK_STR(json_string_value(json_object_get(result, "x")), "fresh");
        json_decref(result);
        json_decref(p);

        /* The peer hangs up. */
        CHECK_INT(rpc_client_call(c, "bye", NULL, 1000000, NULL, NULL), -ECONNRESET);
        CHECK_INT(rpc_client_run(c, 1000000, -1), -ECONNRESET);

        rpc_client_free(c);
        pthread_join(t, NULL);
        close(listen_fd);
        unlink(sock_path);
        rmdir(tmpl);
        TESTS_EXIT();
}
