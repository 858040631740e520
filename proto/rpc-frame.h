/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * ETX (0x03) framing of JSON-RPC messages, as on Moonraker's and Klippy's
 * Unix sockets. A pure codec: no I/O, no logging. Shared by flashd,
 * flashctl and the tests.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RPC_FRAME_ETX 0x03
/* Largest message either side accepts, terminator excluded. A flash image
 * sent as base64 `data` must fit (see proto/API.md, "Limits"). */
#define RPC_FRAME_MAX_DEFAULT (48u * 1024u * 1024u)

typedef struct RpcFrameReader RpcFrameReader;

int rpc_frame_reader_new(RpcFrameReader **ret, size_t max_frame);
RpcFrameReader *rpc_frame_reader_free(RpcFrameReader *r);

/*
 * Messages above `small_max` bytes must be one large string (a base64
 * image) plus a few members: more than `max_tokens` structural characters
 * (`,` `:` `[` `{` outside strings) in such a message make it oversized at
 * once, before it is buffered further or parsed (a batch of a million
 * members never reaches the JSON parser). 0 turns the check off (default).
 */
void rpc_frame_reader_set_small_limit(RpcFrameReader *r, size_t small_max, unsigned max_tokens);

/*
 * Append received bytes. Returns 0, or -EMSGSIZE once the message being
 * assembled exceeds max_frame: the reader then discards bytes up to the next
 * ETX (so one oversized message costs one error, not the connection) and
 * rpc_frame_reader_next() reports the overflow once with -EMSGSIZE, in
 * its place among the messages.
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
/* rpc_frame_reader_next() has something to return (a message or an overflow). */
bool rpc_frame_reader_ready(const RpcFrameReader *r);
/* Bytes of the unfinished message buffered. */
size_t rpc_frame_reader_open_len(const RpcFrameReader *r);
/* Drop the unfinished message as if it were oversized (reported by
 * rpc_frame_reader_next() with -EMSGSIZE; input is skipped to its ETX). */
int rpc_frame_reader_discard_open(RpcFrameReader *r);

/*
 * Messages are numbered from 0 in the order they start (a discarded one
 * counts). head_seq: the number of what rpc_frame_reader_next() returns
 * next; open_seq: the number of the message the next byte fed belongs to;
 * mid_frame: some of that message's bytes have been fed already. A
 * transport uses these to tie ancillary data (a passed fd) to the
 * messages whose bytes came with it.
 */
uint64_t rpc_frame_reader_head_seq(const RpcFrameReader *r);
uint64_t rpc_frame_reader_open_seq(const RpcFrameReader *r);
bool rpc_frame_reader_mid_frame(const RpcFrameReader *r);
