/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stddef.h>
#include <string.h>

#include "rpc-error.h"

static const struct {
        int code;
        const char *name;
        const char *message;
} table[_RPC_ERROR_MAX] = {
        [RPC_ERROR_PARSE] = { -32700, "parse_error", "Parse error: the message is not valid JSON" },
        [RPC_ERROR_INVALID_REQUEST] = { -32600, "invalid_request",
                                        "Invalid request: not a JSON-RPC 2.0 request object" },
        [RPC_ERROR_METHOD_NOT_FOUND] = { -32601, "method_not_found", "Method not found" },
        [RPC_ERROR_INVALID_PARAMS] = { -32602, "invalid_params", "Invalid params" },
        [RPC_ERROR_INTERNAL] = { -32603, "internal_error", "Internal error" },
        [RPC_ERROR_SHUTTING_DOWN] = { -32000, "shutting_down", "the daemon is shutting down" },
        [RPC_ERROR_REQUEST_TOO_LARGE] = { -32001, "request_too_large", "request too large" },
        [RPC_ERROR_PERMISSION_DENIED] = { -32002, "permission_denied", "permission denied" },
        [RPC_ERROR_NOT_FOUND] = { -32003, "not_found", "not found" },
        [RPC_ERROR_DEVICE_NOT_FOUND] = { -32004, "device_not_found", "no such device" },
        [RPC_ERROR_DEVICE_AMBIGUOUS] = { -32005, "device_ambiguous", "several devices match" },
        [RPC_ERROR_BOARD_NOT_FOUND] = { -32006, "board_not_found", "no such board in the board database" },
        [RPC_ERROR_BUSY] = { -32007, "busy", "busy" },
        [RPC_ERROR_TIMEOUT] = { -32008, "timeout", "timed out" },
        [RPC_ERROR_CANCELLED] = { -32009, "cancelled", "cancelled" },
        [RPC_ERROR_IO] = { -32010, "io_error", "input/output error while talking to the device" },
        [RPC_ERROR_UNSUPPORTED] = { -32011, "unsupported", "not supported for this device or board" },
        [RPC_ERROR_REFUSED] = { -32012, "refused",
                                "a safety check refused the image before anything was erased" },
};

int rpc_error_code(RpcError e)
{
        if (e < 0 || e >= _RPC_ERROR_MAX)
                return table[RPC_ERROR_INTERNAL].code;
        return table[e].code;
}

const char *rpc_error_to_string(RpcError e)
{
        if (e < 0 || e >= _RPC_ERROR_MAX)
                return NULL;
        return table[e].name;
}

const char *rpc_error_message(RpcError e)
{
        if (e < 0 || e >= _RPC_ERROR_MAX)
                return table[RPC_ERROR_INTERNAL].message;
        return table[e].message;
}

RpcError rpc_error_from_code(int code)
{
        for (int i = 0; i < _RPC_ERROR_MAX; i++)
                if (table[i].code == code)
                        return (RpcError)i;
        return _RPC_ERROR_INVALID;
}

RpcError rpc_error_from_string(const char *s)
{
        if (!s)
                return _RPC_ERROR_INVALID;
        for (int i = 0; i < _RPC_ERROR_MAX; i++)
                if (strcmp(table[i].name, s) == 0)
                        return (RpcError)i;
        return _RPC_ERROR_INVALID;
}
