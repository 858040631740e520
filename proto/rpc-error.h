/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Stable error codes of the flashd socket API (proto/API.md, "Errors").
 * The JSON-RPC 2.0 codes (-32700 ... -32603) keep their standard meaning;
 * flashd's own codes live in the implementation-defined server range
 * -32000 ... -32099. A code, once published, never changes meaning.
 * Shared by the daemon, flashctl and the tests. No I/O.
 */

typedef enum RpcError {
        RPC_ERROR_PARSE,             /* -32700 invalid JSON */
        RPC_ERROR_INVALID_REQUEST,   /* -32600 not a JSON-RPC 2.0 request */
        RPC_ERROR_METHOD_NOT_FOUND,  /* -32601 */
        RPC_ERROR_INVALID_PARAMS,    /* -32602 */
        RPC_ERROR_INTERNAL,          /* -32603 a bug or resource shortage in flashd */
        RPC_ERROR_SHUTTING_DOWN,     /* -32000 the daemon is stopping */
        RPC_ERROR_REQUEST_TOO_LARGE, /* -32001 message above the input limit */
        RPC_ERROR_PERMISSION_DENIED, /* -32002 mutating call from a peer outside flash_group */
        RPC_ERROR_NOT_FOUND,         /* -32003 some named object does not exist */
        RPC_ERROR_DEVICE_NOT_FOUND,  /* -32004 no device matches */
        RPC_ERROR_DEVICE_AMBIGUOUS,  /* -32005 several devices match; data.candidates lists them */
        RPC_ERROR_BOARD_NOT_FOUND,   /* -32006 no such board in the database */
        RPC_ERROR_BUSY,              /* -32007 the device or object is in use */
        RPC_ERROR_TIMEOUT,           /* -32008 */
        RPC_ERROR_CANCELLED,         /* -32009 */
        RPC_ERROR_IO,                /* -32010 talking to a device failed */
        RPC_ERROR_UNSUPPORTED,       /* -32011 the device or board cannot do this */
        RPC_ERROR_REFUSED, /* -32012 a safety check refused the image (data.error: the job error) */
        _RPC_ERROR_MAX,
        _RPC_ERROR_INVALID = -1,
} RpcError;

/* The numeric JSON-RPC error code. */
int rpc_error_code(RpcError e);
/* snake_case name, sent as error.data.name ("device_not_found"). */
const char *rpc_error_to_string(RpcError e);
/* A default message for a person when the caller has nothing better. */
const char *rpc_error_message(RpcError e);
/* Reverse lookups, for clients; _RPC_ERROR_INVALID when unknown. */
RpcError rpc_error_from_code(int code);
RpcError rpc_error_from_string(const char *s);
