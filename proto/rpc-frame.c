/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rpc-frame.h"

struct RpcFrameReader {
        char *buf;
        size_t len;
        size_t alloc;
        size_t max_frame;
        /* Complete messages end before buf[scanned]; the open (partial)
         * message is buf[scanned..len). */
        size_t scanned;
        bool discarding;
        /* Number of ETX taken in so far: the sequence number of the open
         * message. */
        uint64_t etx_fed;
        /* Some bytes of the open message have been taken in (or discarded). */
        bool mid_frame;
        /* Sequence number of the message at buf[0] (or of the next one). */
        uint64_t head_seq;
        /* Sequence numbers of discarded messages not reported yet, ascending. */
        uint64_t *discarded;
        size_t n_discarded, alloc_discarded;
        /* A message above small_max must look like one large string plus a
         * few members (an image as base64): at most max_tokens structural
         * characters outside strings. 0: no such check. */
        size_t small_max;
        unsigned max_tokens;
        /* Lexical state of the open message (for the check above). */
        unsigned tokens;
        bool in_string, escape;
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
        free(r->discarded);
        free(r);
        return NULL;
}

void rpc_frame_reader_set_small_limit(RpcFrameReader *r, size_t small_max, unsigned max_tokens)
{
        r->small_max = small_max;
        r->max_tokens = max_tokens;
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

/* Give memory back once a large message is gone, so one upload (or an
 * attack) does not keep its peak for the connection's lifetime. */
static void shrink(RpcFrameReader *r)
{
        if (r->alloc <= 65536 || r->len + 1 > r->alloc / 4)
                return;
        size_t n = 4096;
        while (n < r->len + 1)
                n *= 2;
        char *p = realloc(r->buf, n);
        if (p) {
                r->buf = p;
                r->alloc = n;
        }
}

static void lex_reset(RpcFrameReader *r)
{
        r->tokens = 0;
        r->in_string = r->escape = false;
}

static void lex_scan(RpcFrameReader *r, const char *p, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                char ch = p[i];
                if (r->in_string) {
                        if (r->escape)
                                r->escape = false;
                        else if (ch == '\\')
                                r->escape = true;
                        else if (ch == '"')
                                r->in_string = false;
                } else if (ch == '"')
                        r->in_string = true;
                else if (ch == ',' || ch == ':' || ch == '[' || ch == '{')
                        r->tokens++;
        }
}

/* Drop the open message and skip input up to its ETX; reported once by
 * rpc_frame_reader_next() in its place among the messages. */
static int discard_open(RpcFrameReader *r)
{
        if (r->n_discarded == r->alloc_discarded) {
                size_t n = r->alloc_discarded ? r->alloc_discarded * 2 : 4;
                uint64_t *p = realloc(r->discarded, n * sizeof(*p));
                if (!p)
                        return -ENOMEM;
                r->discarded = p;
                r->alloc_discarded = n;
        }
        r->discarded[r->n_discarded++] = r->etx_fed;
        r->len = r->scanned;
        r->discarding = true;
        r->mid_frame = true;
        lex_reset(r);
        shrink(r);
        return 0;
}

int rpc_frame_reader_discard_open(RpcFrameReader *r)
{
        if (r->discarding || !r->mid_frame)
                return 0;
        return discard_open(r);
}

int rpc_frame_reader_feed(RpcFrameReader *r, const void *data, size_t n)
{
        const char *p = data;
        int ret = 0, k;

        while (n > 0) {
                const char *etx = memchr(p, RPC_FRAME_ETX, n);
                size_t chunk = etx ? (size_t)(etx + 1 - p) : n;
                size_t body = etx ? chunk - 1 : chunk;

                if (r->discarding) {
                        if (!etx)
                                return -EMSGSIZE;
                        r->discarding = false;
                        r->etx_fed++;
                        r->mid_frame = false;
                        n -= chunk;
                        p += chunk;
                        continue;
                }

                size_t open_len = r->len - r->scanned; /* partial message already buffered */
                if (r->small_max)
                        lex_scan(r, p, body);
                if (open_len + body > r->max_frame ||
                    (r->small_max && open_len + body > r->small_max && r->tokens > r->max_tokens)) {
                        /* Keep whole messages queued before it. */
                        k = discard_open(r);
                        if (k < 0)
                                return k;
                        ret = -EMSGSIZE;
                        continue;
                }
                k = reserve(r, chunk);
                if (k < 0)
                        return k;
                memcpy(r->buf + r->len, p, chunk);
                r->len += chunk;
                if (etx) {
                        r->scanned = r->len;
                        r->etx_fed++;
                        r->mid_frame = false;
                        lex_reset(r);
                } else if (chunk > 0)
                        r->mid_frame = true;
                p += chunk;
                n -= chunk;
        }
        return ret;
}

int rpc_frame_reader_next(RpcFrameReader *r, char **ret_frame, size_t *ret_len)
{
        if (r->n_discarded > 0 && r->discarded[0] == r->head_seq) {
                memmove(r->discarded, r->discarded + 1, (r->n_discarded - 1) * sizeof(*r->discarded));
                r->n_discarded--;
                r->head_seq++;
                return -EMSGSIZE;
        }

        char *etx = r->scanned ? memchr(r->buf, RPC_FRAME_ETX, r->scanned) : NULL;
        if (!etx)
                return 0;

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
        r->head_seq++;
        shrink(r);

        *ret_frame = frame;
        if (ret_len)
                *ret_len = flen;
        return 1;
}

size_t rpc_frame_reader_pending(const RpcFrameReader *r)
{
        return r->len;
}

bool rpc_frame_reader_ready(const RpcFrameReader *r)
{
        return r->scanned > 0 || (r->n_discarded > 0 && r->discarded[0] == r->head_seq);
}

size_t rpc_frame_reader_open_len(const RpcFrameReader *r)
{
        return r->len - r->scanned;
}

uint64_t rpc_frame_reader_head_seq(const RpcFrameReader *r)
{
        return r->head_seq;
}

uint64_t rpc_frame_reader_open_seq(const RpcFrameReader *r)
{
        return r->etx_fed;
}

bool rpc_frame_reader_mid_frame(const RpcFrameReader *r)
{
        return r->mid_frame;
}
