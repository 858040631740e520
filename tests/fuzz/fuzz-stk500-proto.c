/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The STK500v2 decoder and answer parsers and the STK500v1 answer parser as
 * a session sees the line: arbitrary bytes. The first input byte picks the
 * STK500v1 answer's expected data length.
 */
#include <assert.h>
#include <string.h>

#include "codec/stk500v1-proto.h"
#include "codec/stk500v2-proto.h"
#include "util/macros.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        Stk500v2Decoder d;
        Stk500v2Message m;
        Stk500v1Reply r;
        uint64_t n = 0;

        if (size == 0)
                return 0;
        size_t expect = data[0];
        data++;
        size--;

        stk500v2_decoder_init(&d);
        for (size_t i = 0; i < size; i++) {
                if (stk500v2_decoder_push(&d, data[i], &m) <= 0)
                        continue;
                n++;
                assert(m.len > 0 && m.len <= STK500V2_BODY_MAX);

                /* re-encoding gives the same bytes back */
                uint8_t buf[STK500V2_MSG_MAX];
                int len = stk500v2_encode(m.seq, m.body, m.len, buf, sizeof(buf));
                assert(len == (int)(m.len + STK500V2_OVERHEAD));
                assert(memcmp(buf + 5, m.body, m.len) == 0);

                char name[32];
                if (stk500v2_sign_on_parse(&m, name, sizeof(name)) == 0)
                        assert(strlen(name) > 0 && strlen(name) < sizeof(name));
                uint8_t sig;
                (void)stk500v2_signature_parse(&m, &sig);
                const uint8_t *p;
                for (size_t l = 2; l <= 256; l *= 2)
                        if (stk500v2_read_flash_parse(&m, l, &p) == 0)
                                assert(p == m.body + 2 && m.len == l + 3);
        }
        assert(n == d.n_messages);

        if (stk500v1_reply_init(&r, expect) == 0) {
                int last = 0;
                for (size_t i = 0; i < size; i++) {
                        last = stk500v1_reply_push(&r, data[i]);
                        assert(last <= 1 && last >= -EPROTO - 100);
                }
                if (last == 1)
                        assert(r.have == expect);
        }
        return 0;
}
