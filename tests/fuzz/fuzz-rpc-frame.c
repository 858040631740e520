/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The ETX frame reader with the small-message limit, fed in pieces: every
 * message (or overflow) comes out once, in order, numbered by
 * rpc_frame_reader_head_seq(); a message above the small limit is mostly
 * one string; nothing is longer than the limit. */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rpc-frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_FRAME  64
#define SMALL_MAX  16
#define MAX_TOKENS 4

static unsigned count_tokens(const char *f, size_t n)
{
        bool in_string = false, escape = false;
        unsigned tokens = 0;

        for (size_t i = 0; i < n; i++) {
                char ch = f[i];
                if (in_string) {
                        if (escape)
                                escape = false;
                        else if (ch == '\\')
                                escape = true;
                        else if (ch == '"')
                                in_string = false;
                } else if (ch == '"')
                        in_string = true;
                else if (ch == ',' || ch == ':' || ch == '[' || ch == '{')
                        tokens++;
        }
        return tokens;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        RpcFrameReader *r = NULL;
        uint64_t expect_seq = 0, etx_fed = 0;

        if (size < 1 || rpc_frame_reader_new(&r, MAX_FRAME) < 0)
                return 0;
        rpc_frame_reader_set_small_limit(r, SMALL_MAX, MAX_TOKENS);
        /* The first byte sets the piece size. */
        size_t step = (size_t)(data[0] % 23) + 1;
        for (size_t off = 1; off < size; off += step) {
                size_t n = size - off < step ? size - off : step;
                int k = rpc_frame_reader_feed(r, data + off, n);
                assert(k == 0 || k == -EMSGSIZE);
                for (size_t i = 0; i < n; i++)
                        etx_fed += data[off + i] == RPC_FRAME_ETX;
                assert(rpc_frame_reader_open_seq(r) == etx_fed);
                for (;;) {
                        char *f = NULL;
                        size_t len = 0;
                        uint64_t seq = rpc_frame_reader_head_seq(r);
                        bool ready = rpc_frame_reader_ready(r);
                        int m = rpc_frame_reader_next(r, &f, &len);
                        assert(ready == (m != 0));
                        if (m == 0)
                                break;
                        assert(seq == expect_seq);
                        expect_seq++;
                        assert(rpc_frame_reader_head_seq(r) == expect_seq);
                        if (m == -EMSGSIZE)
                                continue;
                        assert(m == 1 && f);
                        assert(len <= MAX_FRAME && strlen(f) <= len && !memchr(f, RPC_FRAME_ETX, len));
                        assert(len <= SMALL_MAX || count_tokens(f, len) <= MAX_TOKENS);
                        free(f);
                }
                if (off % 5 == 0)
                        assert(rpc_frame_reader_discard_open(r) == 0);
        }
        /* Every message that ended was handed out or reported. */
        assert(expect_seq == etx_fed || (expect_seq == etx_fed + 1 && rpc_frame_reader_mid_frame(r)));
        rpc_frame_reader_free(r);
        return 0;
}
