/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A small synchronous JSON-RPC 2.0 client for flashd's Unix socket
 * (ETX-framed, proto/rpc-frame.h). One connection, one request in flight at
 * a time; every wait is bounded by a timeout.
 *
 * Notifications (messages without "id", method "notify_*") that arrive while
 * a call waits for its answer are queued, in order, and handed to the
 * notification callback by rpc_client_run(); a call never invokes the
 * callback, so a callback may itself make calls.
 *
 * Return values: >= 0 success, negative errno otherwise. The ones callers
 * tell apart:
 *   -EREMOTEIO    the daemon answered with a JSON-RPC error (see RpcClientError)
 *   -ETIMEDOUT    no answer within the timeout
 *   -ECONNRESET   the daemon closed the connection
 *   -EBADMSG      the daemon sent something that is not JSON-RPC 2.0
 *   -EINTR        rpc_client_run(): the interrupt fd became readable
 */

#include <jansson.h>
#include <stdint.h>

#include "util/macros.h"

typedef struct RpcClient RpcClient;

/* A JSON-RPC error object as the daemon sent it. */
typedef struct RpcClientError {
        int64_t code;
        char *message; /* never NULL after a -EREMOTEIO return */
        json_t *data;  /* the optional "data" member, or NULL */
} RpcClientError;

void rpc_client_error_done(RpcClientError *e);

/* usec; used when a call passes 0. */
#define RPC_CLIENT_TIMEOUT_DEFAULT (10 * UINT64_C(1000000))

/*
 * Connect to the socket at `path` (a filesystem path; "@name" for the
 * abstract namespace). The connect itself is bounded by `timeout_usec`.
 * Errors are the connect(2) errno (-ENOENT, -ECONNREFUSED, -EACCES...).
 */
int rpc_client_connect(RpcClient **ret, const char *path, uint64_t timeout_usec);
RpcClient *rpc_client_free(RpcClient *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(RpcClient *, rpc_client_free);

/* The default timeout for calls that pass 0. */
void rpc_client_set_timeout(RpcClient *c, uint64_t timeout_usec);

/*
 * Call `method` with `params` (an object or array, borrowed; NULL sends no
 * params). On success returns 0 and the "result" member in *ret_result (a new
 * reference; may be JSON null). On a JSON-RPC error returns -EREMOTEIO and
 * fills *ret_error when given. timeout_usec 0 = the client's default.
 */
int rpc_client_call(RpcClient *c, const char *method, json_t *params, uint64_t timeout_usec,
                    json_t **ret_result, RpcClientError *ret_error);

/*
 * Like rpc_client_call(), and passes `fd` (e.g. a flash image opened by the
 * user) with SCM_RIGHTS. The fd is attached to the same sendmsg(2) that
 * carries the first bytes of the request, so the daemon receives it with
 * the message it belongs to and can match the two without any extra
 * protocol. The caller keeps its fd (the kernel duplicates it).
 */
int rpc_client_call_with_fd(RpcClient *c, const char *method, json_t *params, int fd, uint64_t timeout_usec,
                            json_t **ret_result, RpcClientError *ret_error);

/* server.connection.identify with client_name, version, type "other". */
int rpc_client_identify(RpcClient *c, const char *client_name, const char *version);

/*
 * Notification callback: method ("notify_device_added") and params (the
 * array, borrowed). Return 0 to go on, > 0 to make rpc_client_run() return
 * that value, < 0 to abort it with that error.
 */
typedef int (*RpcNotifyFunc)(RpcClient *c, const char *method, json_t *params, void *userdata);
void rpc_client_set_notify(RpcClient *c, RpcNotifyFunc callback, void *userdata);

/*
 * Deliver queued notifications, then wait for more and deliver them, until
 * the callback returns non-zero, `timeout_usec` passes (returns 0; pass
 * UINT64_MAX to wait forever), the connection ends (-ECONNRESET), or
 * `interrupt_fd` (a signalfd, eventfd or pipe; -1 for none) becomes readable
 * (-EINTR; the fd is not read).
 */
int rpc_client_run(RpcClient *c, uint64_t timeout_usec, int interrupt_fd);

/* The socket, for callers that want to poll it themselves. */
int rpc_client_get_fd(const RpcClient *c);
