/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "util/log.h"
#include "server/rpc.h"

/* Collects the responses of one batch (JSON-RPC 2.0 §6) and hands them on
 * as one array once the last member call has answered. */
typedef struct RpcBatch {
        unsigned n_ref;
        json_t *responses;
        uint64_t client_id;
        RpcResponseFunc cb;
        void *userdata;
} RpcBatch;

struct RpcCall {
        unsigned n_ref;
        Manager *manager;
        RpcPeer peer;
        uint64_t client_id;
        json_t *id; /* NULL for a notification: nothing is sent back */
        char *method;
        RpcResponseFunc cb;
        void *userdata;
        RpcBatch *batch;
        bool replied;
        int fd; /* SCM_RIGHTS fd that came with the request, or -EBADF */
        /* For rpc_call_suspend() / rpc_call_resume(): the handler runs again. */
        RpcHandler handler;
        json_t *params;
        bool suspended;
        void *data;
        void (*data_free)(void *data);
};

/* The fd handed to rpc_dispatch_text_full(), offered to each call
 * dispatched from that text until one takes it (main loop only, so a
 * file-scope slot is enough). */
static int dispatch_fd = -EBADF;

static RpcBatch *rpc_batch_unref(RpcBatch *b)
{
        if (!b || --b->n_ref > 0)
                return NULL;
        /* §6: nothing at all is returned when every member was a notification. */
        if (json_array_size(b->responses) > 0)
                b->cb(b->client_id, b->responses, b->userdata);
        json_decref(b->responses);
        free(b);
        return NULL;
}

static void rpc_send(uint64_t client_id, RpcResponseFunc cb, void *userdata, RpcBatch *batch,
                     json_t *response)
{
        if (batch)
                json_array_append(batch->responses, response);
        else
                cb(client_id, response, userdata);
}

json_t *rpc_error_response(json_t *id, RpcError e, const char *message, json_t *data)
{
        json_t *error = json_pack("{s:i,s:s}", "code", rpc_error_code(e), "message",
                                  message ? message : rpc_error_message(e));
        if (!error) {
                json_decref(data);
                return NULL;
        }
        if (!data)
                data = json_object();
        if (json_is_object(data))
                json_object_set_new(data, "name", json_string(rpc_error_to_string(e)));
        json_object_set_new(error, "data", data);
        return json_pack("{s:s,s:O,s:o}", "jsonrpc", "2.0", "id", id ? id : json_null(), "error", error);
}

json_t *rpc_notification_new(const char *method, json_t *params)
{
        return json_pack("{s:s,s:s,s:O}", "jsonrpc", "2.0", "method", method, "params",
                         params ? params : json_array());
}

RpcCall *rpc_call_ref(RpcCall *call)
{
        call->n_ref++;
        return call;
}

RpcCall *rpc_call_unref(RpcCall *call)
{
        if (!call || --call->n_ref > 0)
                return NULL;
        if (!call->replied && call->id) {
                log_error("method %s finished without a reply", call->method);
                rpc_call_reply_error(call, RPC_ERROR_INTERNAL, NULL, "%s finished without a reply",
                                     call->method);
        }
        rpc_batch_unref(call->batch);
        safe_close(call->fd);
        if (call->data_free)
                call->data_free(call->data);
        json_decref(call->params);
        peer_cred_free(call->peer.cred);
        json_decref(call->id);
        free(call->method);
        free(call);
        return NULL;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(RpcCall *, rpc_call_unref);

Manager *rpc_call_get_manager(const RpcCall *call)
{
        return call->manager;
}

const RpcPeer *rpc_call_get_peer(const RpcCall *call)
{
        return &call->peer;
}

uint64_t rpc_call_get_client_id(const RpcCall *call)
{
        return call->client_id;
}

const char *rpc_call_get_method(const RpcCall *call)
{
        return call->method;
}

bool rpc_call_replied(const RpcCall *call)
{
        return call->replied;
}

int rpc_call_reply(RpcCall *call, json_t *result)
{
        if (!result) {
                /* The handler could not build its result: say so, never
                 * answer as if all went well. */
                log_error("client %llu: %s: could not build the reply", (unsigned long long)call->client_id,
                          call->method);
                rpc_call_reply_error(call, RPC_ERROR_INTERNAL, NULL,
                                     "%s: the daemon could not build its reply (out of memory?); "
                                     "the call may have taken effect, check with the list methods",
                                     call->method);
                return -ENOMEM;
        }
        if (call->replied) {
                json_decref(result);
                return -EALREADY;
        }
        call->replied = true;
        if (!call->id) { /* notification */
                json_decref(result);
                return 0;
        }
        json_t *response = json_pack("{s:s,s:O,s:o}", "jsonrpc", "2.0", "id", call->id, "result", result);
        if (!response)
                return -ENOMEM;
        rpc_send(call->client_id, call->cb, call->userdata, call->batch, response);
        json_decref(response);
        return 0;
}

static struct {
        RpcResponseFunc cb;
        RpcResponseTextFunc text_cb;
} text_sinks[RPC_TEXT_SINKS_MAX];

int rpc_response_text_func_add(RpcResponseFunc cb, RpcResponseTextFunc text_cb)
{
        for (size_t i = 0; i < ELEMENTSOF(text_sinks); i++)
                if (!text_sinks[i].cb || text_sinks[i].cb == cb) {
                        text_sinks[i].cb = cb;
                        text_sinks[i].text_cb = text_cb;
                        return 0;
                }
        return -ENOSPC;
}

void rpc_response_text_func_remove(RpcResponseFunc cb)
{
        for (size_t i = 0; i < ELEMENTSOF(text_sinks); i++)
                if (text_sinks[i].cb == cb)
                        text_sinks[i].cb = NULL;
}

static RpcResponseTextFunc text_sink_of(RpcResponseFunc cb)
{
        for (size_t i = 0; i < ELEMENTSOF(text_sinks); i++)
                if (text_sinks[i].cb && text_sinks[i].cb == cb)
                        return text_sinks[i].text_cb;
        return NULL;
}

int rpc_call_reply_text(RpcCall *call, const char *result, size_t len)
{
        RpcResponseTextFunc text_cb = text_sink_of(call->cb);

        if (call->replied)
                return -EALREADY;
        if (!call->id) { /* notification */
                call->replied = true;
                return 0;
        }
        if (call->batch || !text_cb) {
                /* A batch collects json_t responses, and a transport
                 * without a text form wants one too. */
                json_error_t error;
                return rpc_call_reply(call, json_loadb(result, len, JSON_DECODE_ANY, &error));
        }
        /* The id is echoed as the client sent it (§5), encoded by jansson
         * like every other reply. */
        _cleanup_free_ char *id = json_dumps(call->id, JSON_ENCODE_ANY | JSON_COMPACT);
        if (!id)
                return rpc_call_reply(call, NULL);
        static const char head[] = "{\"jsonrpc\":\"2.0\",\"id\":", mid[] = ",\"result\":", tail[] = "}";
        const struct iovec iov[] = {
                { (void *)head, sizeof(head) - 1 }, { id, strlen(id) },
                { (void *)mid, sizeof(mid) - 1 },   { (void *)result, len },
                { (void *)tail, sizeof(tail) - 1 },
        };
        call->replied = true;
        text_cb(call->client_id, iov, ELEMENTSOF(iov), call->userdata);
        return 0;
}

int rpc_call_reply_error(RpcCall *call, RpcError e, json_t *data, const char *format, ...)
{
        char buf[1024];

        if (call->replied) {
                json_decref(data);
                return -EALREADY;
        }
        call->replied = true;
        if (format) {
                va_list ap;
                va_start(ap, format);
                vsnprintf(buf, sizeof(buf), format, ap);
                va_end(ap);
        }
        if (!call->id) {
                json_decref(data);
                return -EINVAL;
        }
        json_t *response = rpc_error_response(call->id, e, format ? buf : NULL, data);
        if (!response)
                return -ENOMEM;
        rpc_send(call->client_id, call->cb, call->userdata, call->batch, response);
        json_decref(response);
        return -EINVAL;
}

int rpc_call_unpack_params(RpcCall *call, json_t *params, const char *format, ...)
{
        json_error_t error;
        json_auto_t *empty = NULL;
        va_list ap;
        int r;

        if (!params || json_is_null(params))
                params = empty = json_object();
        va_start(ap, format);
        r = json_vunpack_ex(params, &error, 0, format, ap);
        va_end(ap);
        if (r < 0)
                return rpc_call_reply_error(call, RPC_ERROR_INVALID_PARAMS, NULL,
                                            "Invalid params for %s: %s", call->method, error.text);
        return 0;
}

static const RpcMethod *extra_tables[RPC_EXTRA_TABLES_MAX];

int rpc_method_table_add(const RpcMethod *table)
{
        for (size_t i = 0; i < ELEMENTSOF(extra_tables); i++)
                if (!extra_tables[i]) {
                        extra_tables[i] = table;
                        return 0;
                }
        return -ENOSPC;
}

void rpc_method_table_remove(const RpcMethod *table)
{
        for (size_t i = 0; i < ELEMENTSOF(extra_tables); i++)
                if (extra_tables[i] == table)
                        extra_tables[i] = NULL;
}

/* Static tables first, then the ones added at run time; NULL at the end. */
static const RpcMethod *table_at(size_t i)
{
        size_t n_static = 0;
        while (rpc_method_tables[n_static])
                n_static++;
        if (i < n_static)
                return rpc_method_tables[i];
        for (size_t k = 0, seen = n_static; k < ELEMENTSOF(extra_tables); k++)
                if (extra_tables[k] && seen++ == i)
                        return extra_tables[k];
        return NULL;
}

const RpcMethod *rpc_method_find(const char *name)
{
        const RpcMethod *t;
        for (size_t i = 0; (t = table_at(i)); i++)
                for (const RpcMethod *m = t; m->name; m++)
                        if (streq(m->name, name))
                                return m;
        return NULL;
}

static int strcmp_ptr(const void *a, const void *b)
{
        return strcmp(*(const char *const *)a, *(const char *const *)b);
}

json_t *rpc_method_names(void)
{
        const char *names[512];
        size_t n = 0;

        const RpcMethod *t;
        for (size_t i = 0; (t = table_at(i)); i++)
                for (const RpcMethod *m = t; m->name && n < ELEMENTSOF(names); m++)
                        names[n++] = m->name;
        qsort(names, n, sizeof(names[0]), strcmp_ptr);

        json_t *a = json_array();
        if (!a)
                return NULL;
        for (size_t i = 0; i < n; i++)
                json_array_append_new(a, json_string(names[i]));
        return a;
}

static bool rpc_id_valid(const json_t *id)
{
        /* §4: String, Number or Null. Fractional numbers are discouraged;
         * accept them anyway, they are echoed verbatim. */
        return json_is_string(id) || json_is_number(id) || json_is_null(id);
}

/* Check the request's shape (JSON-RPC 2.0 §4); NULL when it is fine, else
 * the error response to send. */
static json_t *rpc_check_request(json_t *message, json_t *id, bool *ret_ok)
{
        json_t *version = json_object_get(message, "jsonrpc");
        json_t *method = json_object_get(message, "method");
        json_t *params = json_object_get(message, "params");

        *ret_ok = false;
        if (!json_is_string(version) || !streq(json_string_value(version), "2.0"))
                return rpc_error_response(id, RPC_ERROR_INVALID_REQUEST,
                                          "Invalid request: \"jsonrpc\" must be \"2.0\"", NULL);
        if (!json_is_string(method))
                return rpc_error_response(id, RPC_ERROR_INVALID_REQUEST,
                                          "Invalid request: \"method\" must be a string", NULL);
        if (params && !json_is_object(params) && !json_is_array(params))
                return rpc_error_response(id, RPC_ERROR_INVALID_REQUEST,
                                          "Invalid request: \"params\" must be an object or an array", NULL);
        *ret_ok = true;
        return NULL;
}

static int rpc_dispatch_one(Manager *m, const RpcPeer *peer, uint64_t client_id, json_t *message,
                            RpcResponseFunc cb, void *userdata, RpcBatch *batch)
{
        json_t *id = json_is_object(message) ? json_object_get(message, "id") : NULL;
        bool ok = false;

        if (id && !rpc_id_valid(id)) {
                json_auto_t *bad = rpc_error_response(
                        NULL, RPC_ERROR_INVALID_REQUEST,
                        "Invalid request: \"id\" must be a string, a number or null", NULL);
                if (!bad)
                        return -ENOMEM;
                rpc_send(client_id, cb, userdata, batch, bad);
                return 0;
        }
        json_auto_t *response = json_is_object(message)
                                        ? rpc_check_request(message, id, &ok)
                                        : rpc_error_response(NULL, RPC_ERROR_INVALID_REQUEST, NULL, NULL);
        if (!ok) {
                if (!response)
                        return -ENOMEM;
                rpc_send(client_id, cb, userdata, batch, response);
                return 0;
        }

        _cleanup_(rpc_call_unrefp) RpcCall *call = calloc(1, sizeof(*call));
        if (!call)
                return -ENOMEM;
        call->n_ref = 1;
        call->fd = -EBADF;
        call->manager = m;
        call->peer = *peer;
        call->peer.cred = NULL;
        call->client_id = client_id;
        call->id = id ? json_incref(id) : NULL;
        call->cb = cb;
        call->userdata = userdata;
        if (batch) {
                batch->n_ref++;
                call->batch = batch;
        }
        call->method = strdup(json_string_value(json_object_get(message, "method")));
        if (!call->method)
                return -ENOMEM;
        if (peer->cred && peer_cred_new(&call->peer.cred, peer->cred->pid, peer->cred->uid, peer->cred->gid,
                                        peer->cred->groups, peer->cred->n_groups) < 0)
                return -ENOMEM;

        const RpcMethod *entry = rpc_method_find(call->method);
        if (!entry) {
                rpc_call_reply_error(call, RPC_ERROR_METHOD_NOT_FOUND,
                                     json_pack("{s:s}", "method", call->method), "Method not found: %s",
                                     call->method);
                return 0;
        }
        if ((entry->flags & RPC_METHOD_MUTATING) && !peer->may_mutate) {
                log_notice("client %llu (uid %u) denied %s", (unsigned long long)client_id,
                           (unsigned)peer->uid, call->method);
                rpc_call_reply_error(call, RPC_ERROR_PERMISSION_DENIED,
                                     json_pack("{s:s}", "method", call->method),
                                     "permission denied: %s changes state and needs root or a member of the "
                                     "flash group (flash_group in flashd.conf)",
                                     call->method);
                return 0;
        }

        log_debug("client %llu: %s", (unsigned long long)client_id, call->method);
        /* The passed fd is offered to this call; one it does not take goes
         * on to the next request of the same bytes. */
        call->fd = TAKE_FD(dispatch_fd);
        call->handler = entry->handler;
        call->params = json_incref(json_object_get(message, "params"));
        int r = entry->handler(call, call->params);
        dispatch_fd = TAKE_FD(call->fd);
        if (r < 0 && !call->replied && !call->suspended)
                rpc_call_reply_error(call, RPC_ERROR_INTERNAL, NULL, "%s failed: %s", call->method,
                                     strerror(-r));
        return 0;
}

int rpc_dispatch(Manager *m, const RpcPeer *peer, uint64_t client_id, json_t *message, RpcResponseFunc cb,
                 void *userdata)
{
        if (!json_is_array(message))
                return rpc_dispatch_one(m, peer, client_id, message, cb, userdata, NULL);

        if (json_array_size(message) == 0) {
                json_auto_t *response = rpc_error_response(NULL, RPC_ERROR_INVALID_REQUEST,
                                                           "Invalid request: empty batch", NULL);
                if (!response)
                        return -ENOMEM;
                cb(client_id, response, userdata);
                return 0;
        }
        /* One answer for the whole batch, not one per member: a batch of a
         * million members must not cost a million error objects. */
        if (json_array_size(message) > RPC_BATCH_MAX) {
                char buf[160];
                snprintf(buf, sizeof(buf),
                         "Invalid request: a batch may have at most %u members; it had %zu", RPC_BATCH_MAX,
                         json_array_size(message));
                json_auto_t *response =
                        rpc_error_response(NULL, RPC_ERROR_INVALID_REQUEST, buf,
                                           json_pack("{s:I}", "limit", (json_int_t)RPC_BATCH_MAX));
                if (!response)
                        return -ENOMEM;
                cb(client_id, response, userdata);
                return 0;
        }

        RpcBatch *batch = calloc(1, sizeof(*batch));
        if (!batch)
                return -ENOMEM;
        *batch = (RpcBatch){
                .n_ref = 1, .responses = json_array(), .client_id = client_id, .cb = cb, .userdata = userdata
        };
        if (!batch->responses) {
                free(batch);
                return -ENOMEM;
        }
        size_t i;
        json_t *member;
        int r = 0;
        json_array_foreach (message, i, member) {
                r = rpc_dispatch_one(m, peer, client_id, member, cb, userdata, batch);
                if (r < 0)
                        break;
        }
        rpc_batch_unref(batch);
        return r;
}

int rpc_call_suspend(RpcCall *call)
{
        if (call->replied || call->suspended)
                return -EALREADY;
        call->suspended = true;
        rpc_call_ref(call);
        return -EINPROGRESS;
}

void rpc_call_resume(RpcCall *call)
{
        if (!call->suspended)
                return;
        call->suspended = false;
        int r = call->handler(call, call->params);
        if (r < 0 && !call->replied && !call->suspended)
                rpc_call_reply_error(call, RPC_ERROR_INTERNAL, NULL, "%s failed: %s", call->method,
                                     strerror(-r));
        rpc_call_unref(call);
}

void rpc_call_set_data(RpcCall *call, void *data, void (*data_free)(void *data))
{
        if (call->data_free)
                call->data_free(call->data);
        call->data = data;
        call->data_free = data_free;
}

void *rpc_call_get_data(const RpcCall *call)
{
        return call->data;
}

int rpc_call_take_fd(RpcCall *call)
{
        return TAKE_FD(call->fd);
}

/* A message above the small limit may only be what needs the room: one
 * request (not a batch) to a method that takes image bytes, with them. */
static bool rpc_message_may_be_large(json_t *message)
{
        const char *method = json_string_value(json_object_get(message, "method"));
        json_t *image = json_object_get(json_object_get(message, "params"), "image");

        return method && (streq(method, "job.flash") || streq(method, "rule.add")) &&
               json_is_string(json_object_get(image, "data"));
}

int rpc_dispatch_text_full(Manager *m, const RpcPeer *peer, uint64_t client_id, const char *text, size_t len,
                           size_t small_max, int *fd, RpcResponseFunc cb, void *userdata)
{
        json_error_t error;
        /* JSON_DISABLE_EOF_CHECK is not set: trailing garbage is a parse error. */
        json_auto_t *message = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &error);

        if (!message) {
                char buf[256];
                snprintf(buf, sizeof(buf), "Parse error: %s (at byte %d)", error.text, error.position);
                json_auto_t *response = rpc_error_response(NULL, RPC_ERROR_PARSE, buf, NULL);
                if (!response)
                        return -ENOMEM;
                cb(client_id, response, userdata);
                return 0;
        }
        if (small_max > 0 && len > small_max && !rpc_message_may_be_large(message)) {
                char buf[256];
                snprintf(buf, sizeof(buf),
                         "request too large: %zu bytes; a message may be at most %zu bytes unless it is "
                         "job.flash or rule.add with image.data; it was skipped",
                         len, small_max);
                json_auto_t *response =
                        rpc_error_response(NULL, RPC_ERROR_REQUEST_TOO_LARGE, buf,
                                           json_pack("{s:I}", "limit", (json_int_t)small_max));
                if (!response)
                        return -ENOMEM;
                cb(client_id, response, userdata);
                return 0;
        }

        int r;
        safe_close(dispatch_fd);
        dispatch_fd = fd ? TAKE_FD(*fd) : -EBADF;
        r = rpc_dispatch(m, peer, client_id, message, cb, userdata);
        /* Not taken (parse error, notification, a method without an fd):
         * back to the caller, which may offer it to the next request. */
        if (fd)
                *fd = TAKE_FD(dispatch_fd);
        return r;
}

int rpc_dispatch_text_with_fd(Manager *m, const RpcPeer *peer, uint64_t client_id, const char *text,
                              size_t len, int fd, RpcResponseFunc cb, void *userdata)
{
        int r = rpc_dispatch_text_full(m, peer, client_id, text, len, 0, &fd, cb, userdata);
        safe_close(fd);
        return r;
}

int rpc_dispatch_text(Manager *m, const RpcPeer *peer, uint64_t client_id, const char *text, size_t len,
                      RpcResponseFunc cb, void *userdata)
{
        return rpc_dispatch_text_full(m, peer, client_id, text, len, 0, NULL, cb, userdata);
}
