/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rpc-frame.h"

struct RpcFrameReader {
        char *buf;
        size_t len;
        size_t alloc;
        size_t max_frame;
        /* How far buf[] has been searched for ETX, so feeding one byte at a
         * time stays linear. */
        size_t scanned;
        bool discarding;
        bool overflow_pending;
};

int rpc_frame_reader_new(RpcFrameReader **ret, size_t max_frame)
{
        RpcFrameReader *r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        r->max_frame = max_frame ? max_frame : RPC_FRAME_MAX_DEFAULT;
        *ret = r;
        return 0;
}

RpcFrameReader *rpc_frame_reader_free(RpcFrameReader *r)
{
        if (!r)
                return NULL;
        free(r->buf);
        free(r);
        return NULL;
}

static int reserve(RpcFrameReader *r, size_t extra)
{
        size_t want = r->len + extra + 1;
        if (want <= r->alloc)
                return 0;
        size_t n = r->alloc ? r->alloc : 4096;
        while (n < want)
                n *= 2;
        char *p = realloc(r->buf, n);
        if (!p)
                return -ENOMEM;
        r->buf = p;
        r->alloc = n;
        return 0;
}

int rpc_frame_reader_feed(RpcFrameReader *r, const void *data, size_t n)
{
        const char *p = data;
        int ret = 0;

        while (n > 0) {
                if (r->discarding) {
                        const char *etx = memchr(p, RPC_FRAME_ETX, n);
                        if (!etx)
                                return -EMSGSIZE;
                        r->discarding = false;
                        n -= (size_t)(etx + 1 - p);
                        p = etx + 1;
                        continue;
                }

                /* Bytes of the message being assembled that may still be taken in. */
                const char *etx = memchr(p, RPC_FRAME_ETX, n);
                size_t chunk = etx ? (size_t)(etx + 1 - p) : n;
                size_t open_len = r->len - r->scanned; /* partial message already buffered */
                size_t body = etx ? chunk - 1 : chunk;
                if (open_len + body > r->max_frame) {
                        /* Drop the partial message; keep whole ones queued before it. */
                        r->len = r->scanned;
                        r->discarding = true;
                        r->overflow_pending = true;
                        ret = -EMSGSIZE;
                        continue;
                }
                int k = reserve(r, chunk);
                if (k < 0)
                        return k;
                memcpy(r->buf + r->len, p, chunk);
                r->len += chunk;
                if (etx)
                        r->scanned = r->len;
                p += chunk;
                n -= chunk;
        }
        return ret;
}

int rpc_frame_reader_next(RpcFrameReader *r, char **ret_frame, size_t *ret_len)
{
        char *etx = r->len ? memchr(r->buf, RPC_FRAME_ETX, r->scanned) : NULL;

        if (!etx) {
                if (r->overflow_pending) {
                        r->overflow_pending = false;
                        return -EMSGSIZE;
                }
                return 0;
        }

        size_t flen = (size_t)(etx - r->buf);
        char *frame = malloc(flen + 1);
        if (!frame)
                return -ENOMEM;
        memcpy(frame, r->buf, flen);
        frame[flen] = '\0';

        size_t consumed = flen + 1;
        memmove(r->buf, r->buf + consumed, r->len - consumed);
        r->len -= consumed;
        r->scanned -= consumed;

        *ret_frame = frame;
        if (ret_len)
                *ret_len = flen;
        return 1;
}

size_t rpc_frame_reader_pending(const RpcFrameReader *r)
{
        return r->len;
}
