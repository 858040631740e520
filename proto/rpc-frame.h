/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * ETX (0x03) framing of JSON-RPC messages, as on Moonraker's and Klippy's
 * Unix sockets. A pure codec: no I/O, no logging. Shared by flashd,
 * flashctl and the tests.
 */

#include <stdbool.h>
#include <stddef.h>

#define RPC_FRAME_ETX 0x03
/* Largest message either side accepts, terminator excluded. A flash image
 * sent as base64 `data` must fit (see proto/API.md, "Limits"). */
#define RPC_FRAME_MAX_DEFAULT (48u * 1024u * 1024u)

typedef struct RpcFrameReader RpcFrameReader;

int rpc_frame_reader_new(RpcFrameReader **ret, size_t max_frame);
RpcFrameReader *rpc_frame_reader_free(RpcFrameReader *r);

/*
 * Append received bytes. Returns 0, or -EMSGSIZE once the message being
 * assembled exceeds max_frame: the reader then discards bytes up to the next
 * ETX (so one oversized message costs one error, not the connection) and
 * rpc_frame_reader_next() reports the overflow once with -EMSGSIZE.
 */
int rpc_frame_reader_feed(RpcFrameReader *r, const void *data, size_t n);

/*
 * Take the next complete message (NUL-terminated, without its ETX) out of
 * the reader. Returns 1 and a malloc'd frame, 0 when no complete message is
 * buffered, -EMSGSIZE once per discarded oversized message.
 */
int rpc_frame_reader_next(RpcFrameReader *r, char **ret_frame, size_t *ret_len);

/* Bytes currently buffered (for flow control and tests). */
size_t rpc_frame_reader_pending(const RpcFrameReader *r);
