/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * JSON-RPC 2.0 dispatch: the ONE place every request goes through, whether
 * it came from a local socket client (server.c) or from elsewhere (the
 * Moonraker agent feeds requests with its own ids and gets the response
 * JSON back through its callback).
 *
 * Registering methods: a module defines a table terminated by an entry
 * with name == NULL,
 *
 *         const RpcMethod job_methods[] = {
 *                 { "job.flash", job_method_flash, RPC_METHOD_MUTATING },
 *                 { "job.list",  job_method_list,  RPC_METHOD_READ },
 *                 {}
 *         };
 *
 * declares it below (extern) and lists it once in rpc_method_tables[]
 * (rpc-tables.c). Method names are unique across tables (a unit test checks).
 *
 * Handlers: `int handler(RpcCall *call, json_t *params)`. params is the
 * request's params (object or array, NULL when absent), borrowed. The
 * handler answers with rpc_call_reply() or rpc_call_reply_error(), now or
 * later: to answer asynchronously take a reference (rpc_call_ref()), keep the
 * call, return 0, and reply + rpc_call_unref() from the main loop later.
 * A handler that returns < 0 without replying gets an internal error reply
 * carrying the errno text. A call dropped without any reply is answered with
 * an internal error too, so a client never waits forever.
 *
 * Everything here runs on the main loop thread.
 */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "rpc-error.h"
#include "server/peer-auth.h"

typedef struct Manager Manager;
typedef struct RpcCall RpcCall;

typedef enum RpcMethodFlags {
        RPC_METHOD_READ = 0,
        /* Changes state or touches devices: the peer must be authorized
         * (RpcPeer.may_mutate, set by the transport from peer-auth). */
        RPC_METHOD_MUTATING = 1 << 0,
} RpcMethodFlags;

typedef int (*RpcHandler)(RpcCall *call, json_t *params);

typedef struct RpcMethod {
        const char *name;
        RpcHandler handler;
        RpcMethodFlags flags;
} RpcMethod;

/* Who is calling. Filled by the transport; copied into each call. */
typedef struct RpcPeer {
        bool has_credentials; /* pid/uid/gid valid (SO_PEERCRED) */
        pid_t pid;
        uid_t uid;
        gid_t gid;
        bool may_mutate;    /* allowed to call RPC_METHOD_MUTATING methods */
        const char *origin; /* "unix", "moonraker", "fuzz": static string */
        /* Full credentials incl. supplementary groups, or NULL (e.g. a
         * request relayed by Moonraker). Each call holds its own copy, valid
         * for the call's lifetime (for peer_open_as() in handlers). */
        PeerCred *cred;
} RpcPeer;

/*
 * Receives every response object ({"jsonrpc","id","result"|"error"}) or,
 * for a batch, one array of them. The callee takes its own reference if it
 * keeps it. `client_id` is the one passed to rpc_dispatch*(): since replies
 * can come later, transports look their connection up by id (it may be gone)
 * and `userdata` must outlive every pending call (a per-transport object,
 * not a per-connection one).
 */
typedef void (*RpcResponseFunc)(uint64_t client_id, json_t *response, void *userdata);

/*
 * The same response already encoded, in pieces to be sent one after the
 * other (no terminator). A transport that writes text registers this form
 * next to its RpcResponseFunc, so that a result kept encoded
 * (rpc_call_reply_text()) is sent without parsing and dumping it again.
 */
struct iovec;
typedef void (*RpcResponseTextFunc)(uint64_t client_id, const struct iovec *iov, size_t n_iov,
                                    void *userdata);
/* At most RPC_TEXT_SINKS_MAX pairs; -ENOSPC beyond. */
#define RPC_TEXT_SINKS_MAX 4
int rpc_response_text_func_add(RpcResponseFunc cb, RpcResponseTextFunc text_cb);
void rpc_response_text_func_remove(RpcResponseFunc cb);

/* Dispatch one parsed message (request object, notification, or batch
 * array). Returns 0, or -ENOMEM. */
int rpc_dispatch(Manager *m, const RpcPeer *peer, uint64_t client_id, json_t *message, RpcResponseFunc cb,
                 void *userdata);
/* Same from text: a parse error is answered with -32700 and id null. */
int rpc_dispatch_text(Manager *m, const RpcPeer *peer, uint64_t client_id, const char *text, size_t len,
                      RpcResponseFunc cb, void *userdata);

/* Same, with a file descriptor that came with the request's first bytes
 * (SCM_RIGHTS, e.g. a flash image from flashctl). Takes ownership of fd;
 * the calls dispatched from the text may take it with rpc_call_take_fd()
 * (the first that asks), otherwise it is closed. */
int rpc_dispatch_text_with_fd(Manager *m, const RpcPeer *peer, uint64_t client_id, const char *text,
                              size_t len, int fd, RpcResponseFunc cb, void *userdata);
/* The general form. `*fd` (may be NULL) is offered like above; when no call
 * took it, it is left in *fd for the caller. small_max > 0: a message longer
 * than that is refused with -32001 unless it is job.flash or rule.add
 * carrying image.data (the only requests that need the room). */
int rpc_dispatch_text_full(Manager *m, const RpcPeer *peer, uint64_t client_id, const char *text, size_t len,
                           size_t small_max, int *fd, RpcResponseFunc cb, void *userdata);

/* Most members of one batch; a larger batch gets one -32600 error. */
#define RPC_BATCH_MAX 64u

/* Build responses outside a call (transport errors, e.g. request too large). */
json_t *rpc_error_response(json_t *id, RpcError e, const char *message, json_t *data);
json_t *rpc_notification_new(const char *method, json_t *params);

/* The call context. */
RpcCall *rpc_call_ref(RpcCall *call);
RpcCall *rpc_call_unref(RpcCall *call);
Manager *rpc_call_get_manager(const RpcCall *call);
const RpcPeer *rpc_call_get_peer(const RpcCall *call);
uint64_t rpc_call_get_client_id(const RpcCall *call);
const char *rpc_call_get_method(const RpcCall *call);
bool rpc_call_replied(const RpcCall *call);
/* The fd passed with the request (ownership moves to the caller), or -EBADF. */
int rpc_call_take_fd(RpcCall *call);

/*
 * For a handler that must wait for work off the main loop before it can go
 * on (opening a client's path): rpc_call_suspend() keeps the call (a
 * reference) and returns -EINPROGRESS for the handler to return (no error
 * reply is made for it). When the work is done, store its result with
 * rpc_call_set_data() and call rpc_call_resume(): the handler runs again
 * from the start with the same params, finds the result with
 * rpc_call_get_data(), and answers. Handlers that suspend must have no side
 * effects before the point where they suspend.
 */
int rpc_call_suspend(RpcCall *call);
void rpc_call_resume(RpcCall *call);
void rpc_call_set_data(RpcCall *call, void *data, void (*data_free)(void *data));
void *rpc_call_get_data(const RpcCall *call);

/* Answer. `result` is stolen; pass json_string("ok") for a bare success.
 * NULL means building the result failed: that is logged and answered with
 * an internal error (returns -ENOMEM). Returns 0, or -EALREADY when the
 * call was answered before. */
int rpc_call_reply(RpcCall *call, json_t *result);
/* Answer with a result that is already JSON text (`len` bytes, one valid
 * JSON value, e.g. a list kept encoded between requests; the caller
 * vouches for it). Sent as it is when the transport registered a text
 * form and the call is not a batch member; parsed into a json_t
 * otherwise. Returns like rpc_call_reply(). */
int rpc_call_reply_text(RpcCall *call, const char *result, size_t len);
/* `data` (an object or NULL) is stolen and gets "name": the error's
 * rpc_error_to_string(). `format` NULL uses rpc_error_message(). Returns
 * -EINVAL-style negative value for handlers to return:
 *         return rpc_call_reply_error(call, RPC_ERROR_DEVICE_NOT_FOUND, NULL, "no device %s", id); */
int rpc_call_reply_error(RpcCall *call, RpcError e, json_t *data, const char *format, ...)
        __attribute__((format(printf, 4, 5)));

/*
 * Unpack params with a jansson format (json_unpack_ex). Missing params are
 * treated as {}. On mismatch answers -32602 with jansson's explanation and
 * returns -EINVAL; the handler then just returns. Use "!" in the format to
 * reject unknown keys.
 */
int rpc_call_unpack_params(RpcCall *call, json_t *params, const char *format, ...);

/* Method tables: one extern per module, listed in rpc-tables.c. */
extern const RpcMethod server_methods[];
extern const RpcMethod device_methods[];
extern const RpcMethod board_methods[];
extern const RpcMethod job_methods[];
extern const RpcMethod rule_methods[];
extern const RpcMethod update_methods[];
extern const RpcMethod *const rpc_method_tables[];

/* Add a table at run time (tests; a plug-in that exists only in some
 * configurations). At most RPC_EXTRA_TABLES_MAX; -ENOSPC beyond. */
#define RPC_EXTRA_TABLES_MAX 8
int rpc_method_table_add(const RpcMethod *table);
void rpc_method_table_remove(const RpcMethod *table);

const RpcMethod *rpc_method_find(const char *name);
/* Sorted array of every registered name (for server.methods). */
json_t *rpc_method_names(void);
