/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The JSON-RPC dispatch on a Manager without devices: request validation,
 * error codes, batches, permission checks, asynchronous replies. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "config.h"
#include "manager.h"
#include "server/rpc.h"
#include "tests.h"

static json_t *responses; /* every response delivered, in order */

static void on_response(uint64_t client_id, json_t *response, void *userdata)
{
        CHECK_INT(client_id, 42);
        CHECK(userdata == &responses);
        json_array_append(responses, response);
}

static RpcCall *pending; /* the call test.async keeps */

static int method_async(RpcCall *call, json_t *params)
{
        pending = rpc_call_ref(call);
        return 0;
}

static int method_fails(RpcCall *call, json_t *params)
{
        return -EIO;
}

static int method_no_reply(RpcCall *call, json_t *params)
{
        return 0;
}

static int method_mutate(RpcCall *call, json_t *params)
{
        return rpc_call_reply(call, json_pack("{s:b}", "mutated", 1));
}

static int method_double(RpcCall *call, json_t *params)
{
        CHECK_INT(rpc_call_reply(call, json_string("ok")), 0);
        CHECK_INT(rpc_call_reply(call, json_string("ok")), -EALREADY);
        return 0;
}

/* A result that could not be built (a string that is not UTF-8 makes
 * json_pack() fail) is an error, never a silent "ok". */
static int method_bad_result(RpcCall *call, json_t *params)
{
        return rpc_call_reply(call, json_pack("{s:s}", "name", "\xff\xfe"));
}

/* A result kept encoded, as device.list keeps its list. */
static const char text_result[] = "{\"a\":[1,\"x\\\"y\"],\"b\":null}";

static int method_text(RpcCall *call, json_t *params)
{
        CHECK_INT(rpc_call_reply_text(call, text_result, strlen(text_result)), 0);
        CHECK_INT(rpc_call_reply_text(call, text_result, strlen(text_result)), -EALREADY);
        return 0;
}

static const RpcMethod test_methods[] = {
        { "test.text", method_text, RPC_METHOD_READ },
        { "test.async", method_async, RPC_METHOD_READ },
        { "test.fails", method_fails, RPC_METHOD_READ },
        { "test.no_reply", method_no_reply, RPC_METHOD_READ },
        { "test.mutate", method_mutate, RPC_METHOD_MUTATING },
        { "test.double", method_double, RPC_METHOD_READ },
        { "test.bad_result", method_bad_result, RPC_METHOD_READ },
        {},
};

static Manager *manager_for_tests(void)
{
        Config *c = NULL;
        Manager *m = NULL;
        const char *dir = getenv("FLASHD_BOARDS_DIR") ?: FLASHD_SOURCE_BOARDS_DIR;

        if (config_new(&c) < 0 || config_add_boards_dir(c, dir) < 0 ||
            config_set_string(&c->state_dir, "/nonexistent") < 0)
                abort();
        if (manager_new(&m, NULL, c) < 0)
                abort();
        return m;
}

static json_t *dispatch(Manager *m, const RpcPeer *peer, const char *text)
{
        json_array_clear(responses);
        CHECK_INT(rpc_dispatch_text(m, peer, 42, text, strlen(text), on_response, &responses), 0);
        if (json_array_size(responses) == 0)
                return NULL;
        CHECK_INT(json_array_size(responses), 1);
        return json_incref(json_array_get(responses, 0));
}

static int error_code(json_t *response)
{
        json_t *e = json_object_get(response, "error");
        return e ? (int)json_integer_value(json_object_get(e, "code")) : 0;
}

static void test_table(Manager *m)
{
        static const struct {
                const char *text;
                int code;               /* 0: expect a result */
                const char *result_key; /* a key the result object must have */
        } cases[] = {
                { "{\"jsonrpc\":\"2.0\",\"method\":\"server.info\",\"id\":1}", 0, "api_version" },
                { "{\"jsonrpc\":\"2.0\",\"method\":\"server.info\",\"params\":{},\"id\":1}", 0, "version" },
                { "{\"jsonrpc\":\"2.0\",\"method\":\"server.info\",\"params\":{\"x\":1},\"id\":1}", -32602,
                  NULL },
                { "{\"jsonrpc\":\"2.0\",\"method\":\"device.info\",\"params\":{\"device\":\"1-1\"},\"id\":"
                  "1}",
                  -32004, NULL },
                { "{\"jsonrpc\":\"2.0\",\"method\":\"device.info\",\"params\":[],\"id\":1}", -32602, NULL },
                { "{\"jsonrpc\":\"2.0\",\"method\":\"board.info\",\"params\":{\"board\":\"nope\"},\"id\":1}",
                  -32006, NULL },
                { "{\"jsonrpc\":\"2.0\",\"method\":\"board.info\",\"params\":{\"board\":\"octopus-pro\"},"
                  "\"id\":1}",
                  0, "variants" },
                { "{\"jsonrpc\":\"2.0\",\"method\":\"server.connection.identify\",\"params\":{\"client_"
                  "name\":\"a\",\"version\":\"1\",\"type\":\"web\"},\"id\":1}",
                  0, "connection_id" },
                { "{\"jsonrpc\":\"2.0\",\"method\":\"nope\",\"id\":1}", -32601, NULL },
                { "{\"jsonrpc\":\"2.0\",\"method\":\"server.info\",\"id\":{}}", -32600, NULL },
                { "{\"jsonrpc\":\"2.1\",\"method\":\"server.info\",\"id\":1}", -32600, NULL },
                { "{\"method\":\"server.info\",\"id\":1}", -32600, NULL },
                { "{\"jsonrpc\":\"2.0\",\"id\":1}", -32600, NULL },
                { "{\"jsonrpc\":\"2.0\",\"method\":\"server.info\",\"params\":\"x\",\"id\":1}", -32600,
                  NULL },
                { "\"just a string\"", -32600, NULL },
                { "[]", -32600, NULL },
                { "", -32700, NULL },
                { "{", -32700, NULL },
                { "{} trailing", -32700, NULL },
                { "{\"a\":1,\"a\":2}", -32700, NULL },
                { "{\"jsonrpc\":\"2.0\",\"method\":\"test.fails\",\"id\":1}", -32603, NULL },
                { "{\"jsonrpc\":\"2.0\",\"method\":\"test.no_reply\",\"id\":1}", -32603, NULL },
                { "{\"jsonrpc\":\"2.0\",\"method\":\"test.mutate\",\"id\":1}", -32002, NULL },
                { "{\"jsonrpc\":\"2.0\",\"method\":\"test.double\",\"id\":1}", 0, NULL },
                { "{\"jsonrpc\":\"2.0\",\"method\":\"test.bad_result\",\"id\":1}", -32603, NULL },
        };
        RpcPeer peer = { .origin = "test" };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                json_auto_t *r = dispatch(m, &peer, cases[i].text);
                if (!r) {
                        fprintf(stderr, "case %zu: no response to %s\n", i, cases[i].text);
                        tests_failed++;
                        continue;
                }
                if (error_code(r) != cases[i].code) {
                        fprintf(stderr, "case %zu: %s -> code %d, expected %d\n", i, cases[i].text,
                                error_code(r), cases[i].code);
                        tests_failed++;
                }
                CHECK_STR(json_string_value(json_object_get(r, "jsonrpc")), "2.0");
                if (cases[i].code) {
                        json_t *data = json_object_get(json_object_get(r, "error"), "data");
                        CHECK(json_is_string(json_object_get(data, "name")));
                        CHECK(json_is_string(json_object_get(json_object_get(r, "error"), "message")));
                }
                if (cases[i].result_key)
                        CHECK(json_object_get(json_object_get(r, "result"), cases[i].result_key) != NULL);
        }

        /* A notification (no id) is executed but not answered, even on error. */
        CHECK(dispatch(m, &peer, "{\"jsonrpc\":\"2.0\",\"method\":\"server.info\"}") == NULL);
        CHECK(dispatch(m, &peer, "{\"jsonrpc\":\"2.0\",\"method\":\"nope\"}") == NULL);

        /* An authorized peer may call a mutating method. */
        RpcPeer admin = { .origin = "test", .may_mutate = true };
        json_auto_t *r =
                dispatch(m, &admin, "{\"jsonrpc\":\"2.0\",\"method\":\"test.mutate\",\"id\":\"x\"}");
        CHECK(json_is_true(json_object_get(json_object_get(r, "result"), "mutated")));
        CHECK_STR(json_string_value(json_object_get(r, "id")), "x");
}

static void test_async(Manager *m)
{
        RpcPeer peer = { .origin = "test" };

        /* Nothing is sent until the handler answers. */
        json_auto_t *r = dispatch(m, &peer, "{\"jsonrpc\":\"2.0\",\"method\":\"test.async\",\"id\":7}");
        CHECK(r == NULL);
        CHECK(pending != NULL);
        CHECK_STR(rpc_call_get_method(pending), "test.async");
        CHECK_INT(rpc_call_get_client_id(pending), 42);
        CHECK(rpc_call_get_manager(pending) == m);
        CHECK_INT(rpc_call_reply(pending, json_pack("{s:i}", "done", 1)), 0);
        pending = rpc_call_unref(pending);
        CHECK_INT(json_array_size(responses), 1);
        CHECK_INT(json_integer_value(json_object_get(json_array_get(responses, 0), "id")), 7);

        /* A kept call dropped without a reply gets an internal error. */
        json_array_clear(responses);
        json_decref(dispatch(m, &peer, "{\"jsonrpc\":\"2.0\",\"method\":\"test.async\",\"id\":8}"));
        CHECK_INT(json_array_size(responses), 0);
        pending = rpc_call_unref(pending);
        CHECK_INT(json_array_size(responses), 1);
        CHECK_INT(error_code(json_array_get(responses, 0)), -32603);

        /* A batch with an async member is answered once, when it completes. */
        const char *batch = "[{\"jsonrpc\":\"2.0\",\"method\":\"server.info\",\"id\":1},"
                            "{\"jsonrpc\":\"2.0\",\"method\":\"test.async\",\"id\":2},"
                            "{\"jsonrpc\":\"2.0\",\"method\":\"server.info\"},"
                            "7]";
        json_array_clear(responses);
        CHECK_INT(rpc_dispatch_text(m, &peer, 42, batch, strlen(batch), on_response, &responses), 0);
        CHECK_INT(json_array_size(responses), 0);
        rpc_call_reply_error(pending, RPC_ERROR_BUSY, NULL, "busy %d", 1);
        pending = rpc_call_unref(pending);
        CHECK_INT(json_array_size(responses), 1);
        json_t *arr = json_array_get(responses, 0);
        CHECK(json_is_array(arr));
        CHECK_INT(json_array_size(arr), 3);
        /* Members are answered in completion order: find them by id. */
        size_t i;
        json_t *member, *async = NULL, *invalid = NULL;
        json_array_foreach (arr, i, member) {
                json_t *mid = json_object_get(member, "id");
                if (json_is_integer(mid) && json_integer_value(mid) == 2)
                        async = member;
                else if (json_is_null(mid))
                        invalid = member;
        }
        CHECK_INT(error_code(async), -32007);
        CHECK_STR(json_string_value(json_object_get(json_object_get(async, "error"), "message")), "busy 1");
        CHECK_INT(error_code(invalid), -32600);
}

/* The entry a non-socket transport (the Moonraker agent) uses: a parsed
 * request with its own id, the response JSON through its own callback. */
static void on_external(uint64_t client_id, json_t *response, void *userdata)
{
        CHECK_INT(client_id, 9000);
        json_t **slot = userdata;
        json_decref(*slot);
        *slot = json_incref(response);
}

static void test_external_dispatch(Manager *m)
{
        RpcPeer peer = { .origin = "moonraker" };
        json_t *got = NULL;
        json_auto_t *req =
                json_pack("{s:s,s:s,s:s}", "jsonrpc", "2.0", "method", "device.list", "id", "mr-17");

        CHECK_INT(rpc_dispatch(m, &peer, 9000, req, on_external, &got), 0);
        CHECK(got != NULL);
        CHECK_STR(json_string_value(json_object_get(got, "id")), "mr-17");
        CHECK(json_is_array(json_object_get(got, "result")));
        json_decref(got);
}

/* What a text transport received: the pieces joined. */
static char *text_got;

static void on_response_text(uint64_t client_id, const struct iovec *iov, size_t n_iov, void *userdata)
{
        size_t n = 0;

        CHECK_INT(client_id, 42);
        CHECK(userdata == &responses);
        for (size_t i = 0; i < n_iov; i++)
                n += iov[i].iov_len;
        free(text_got);
        text_got = calloc(1, n + 1);
        n = 0;
        for (size_t i = 0; i < n_iov; i++) {
                memcpy(text_got + n, iov[i].iov_base, iov[i].iov_len);
                n += iov[i].iov_len;
        }
}

/* A result given as text reaches a text transport as one valid response
 * with the request's id echoed whatever its type, and reaches everything
 * else (no text form, batch members) as the same response parsed. */
static void test_reply_text(Manager *m)
{
        static const struct {
                const char *id; /* as the request writes it */
                bool text_sink;
                bool batch;
        } cases[] = {
                { "1", true, false },    { "\"s\\\"q\"", true, false }, { "null", true, false },
                { "-7.5", true, false }, { "\"\u00e9\"", true, false }, { "1", false, false },
                { "\"b\"", true, true }, { "2", false, true },
        };
        RpcPeer peer = { .origin = "test" };
        json_auto_t *want_result = json_loads(text_result, 0, NULL);

        CHECK(want_result != NULL);
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                char req[256];
                snprintf(req, sizeof(req), "%s{\"jsonrpc\":\"2.0\",\"method\":\"test.text\",\"id\":%s}%s",
                         cases[i].batch ? "[" : "", cases[i].id, cases[i].batch ? "]" : "");
                json_auto_t *want_id = json_loads(cases[i].id, JSON_DECODE_ANY, NULL);
                if (cases[i].text_sink)
                        CHECK_INT(rpc_response_text_func_add(on_response, on_response_text), 0);
                json_array_clear(responses);
                free(text_got), text_got = NULL;
                CHECK_INT(rpc_dispatch_text(m, &peer, 42, req, strlen(req), on_response, &responses), 0);
                rpc_response_text_func_remove(on_response);

                json_auto_t *got = NULL;
                if (cases[i].text_sink && !cases[i].batch) {
                        CHECK_INT(json_array_size(responses), 0);
                        CHECK(text_got != NULL);
                        got = json_loads(strempty(text_got), JSON_REJECT_DUPLICATES, NULL);
                } else {
                        CHECK(text_got == NULL);
                        CHECK_INT(json_array_size(responses), 1);
                        json_t *r = json_array_get(responses, 0);
                        got = json_incref(cases[i].batch ? json_array_get(r, 0) : r);
                }
                if (!got) {
                        fprintf(stderr, "case %zu: no valid response (text: %s)\n", i,
                                text_got ? text_got : "(none)");
                        tests_failed++;
                        continue;
                }
                CHECK_STR(json_string_value(json_object_get(got, "jsonrpc")), "2.0");
                CHECK(json_equal(json_object_get(got, "id"), want_id));
                CHECK(json_equal(json_object_get(got, "result"), want_result));
                CHECK_INT(json_object_size(got), 3);
        }
        free(text_got), text_got = NULL;

        /* A notification is not answered. */
        CHECK_INT(rpc_response_text_func_add(on_response, on_response_text), 0);
        CHECK(dispatch(m, &peer, "{\"jsonrpc\":\"2.0\",\"method\":\"test.text\"}") == NULL);
        CHECK(text_got == NULL);

        /* device.list sends its list as text, the same list as the parsed
         * path gives, and the same text again while nothing changed. */
        CHECK(dispatch(m, &peer, "{\"jsonrpc\":\"2.0\",\"method\":\"device.list\",\"id\":3}") == NULL);
        _cleanup_free_ char *first = TAKE_PTR(text_got);
        CHECK(first != NULL);
        CHECK(dispatch(m, &peer, "{\"jsonrpc\":\"2.0\",\"method\":\"device.list\",\"id\":3}") == NULL);
        CHECK_STR(text_got, first);
        rpc_response_text_func_remove(on_response);
        json_auto_t *parsed =
                dispatch(m, &peer, "{\"jsonrpc\":\"2.0\",\"method\":\"device.list\",\"id\":3}");
        json_auto_t *from_text = json_loads(strempty(first), 0, NULL);
        CHECK(json_is_array(json_object_get(parsed, "result")));
        CHECK(json_equal(parsed, from_text));
        free(text_got), text_got = NULL;
}

static void test_method_names(void)
{
        json_auto_t *names = rpc_method_names();
        size_t i;
        json_t *n;
        const char *prev = "";

        CHECK(json_array_size(names) >= 7);
        json_array_foreach (names, i, n) {
                /* sorted and unique across every table */
                CHECK(strcmp(prev, json_string_value(n)) < 0);
                prev = json_string_value(n);
                CHECK(rpc_method_find(prev) != NULL);
        }
}

static void test_errors_table(void)
{
        for (int e = 0; e < _RPC_ERROR_MAX; e++) {
                CHECK(rpc_error_to_string(e) != NULL);
                CHECK_INT(rpc_error_from_code(rpc_error_code(e)), e);
                CHECK_INT(rpc_error_from_string(rpc_error_to_string(e)), e);
        }
        CHECK_INT(rpc_error_code(RPC_ERROR_PARSE), -32700);
        CHECK_INT(rpc_error_code(RPC_ERROR_DEVICE_NOT_FOUND), -32004);
        CHECK_INT(rpc_error_from_code(1), _RPC_ERROR_INVALID);
}

int main(void)
{
        responses = json_array();
        CHECK_INT(rpc_method_table_add(test_methods), 0);
        Manager *m = manager_for_tests();

        test_table(m);
        test_async(m);
        test_external_dispatch(m);
        test_reply_text(m);
        rpc_method_table_remove(test_methods);
        CHECK(rpc_method_find("test.async") == NULL);
        test_method_names();
        test_errors_table();

        manager_free(m);
        json_decref(responses);
        TESTS_EXIT();
}
