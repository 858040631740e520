/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>

#include "macros.h"
#include "rpc-frame.h"
#include "tests.h"

/* Feed `input` in pieces of `step` bytes and collect frames joined by '|',
 * with "!" for an oversized message. */
static void run(const char *input, size_t input_len, size_t step, size_t max, const char *expected)
{
        RpcFrameReader *r;
        char out[256] = "";

        CHECK_INT(rpc_frame_reader_new(&r, max), 0);
        for (size_t off = 0; off < input_len; off += step) {
                size_t n = MIN(step, input_len - off);
                int k = rpc_frame_reader_feed(r, input + off, n);
                CHECK(k == 0 || k == -EMSGSIZE);
                for (;;) {
                        char *f = NULL;
                        int m = rpc_frame_reader_next(r, &f, NULL);
                        if (m == 0)
                                break;
                        if (out[0])
                                strcat(out, "|");
                        strcat(out, m == -EMSGSIZE ? "!" : f);
                        free(f);
                }
        }
        CHECK_STR(out, expected);
        rpc_frame_reader_free(r);
}

int main(void)
{
        static const struct {
                const char *input;
                size_t max;
                const char *expected;
        } cases[] = {
                { "", 100, "" },
                { "{}\x03", 100, "{}" },
                { "a\x03"
                  "b\x03",
                  100, "a|b" },
                { "a\x03"
                  "partial",
                  100, "a" },
                { "\x03", 100, "" },
                { "0123456789\x03"
                  "ok\x03",
                  5, "!|ok" },
                { "ok\x03"
                  "0123456789\x03"
                  "yes\x03",
                  5, "ok|!|yes" },
                { "12345\x03", 5, "12345" },
                { "123456\x03", 5, "!" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                for (size_t step = 1; step <= 7; step++)
                        run(cases[i].input, strlen(cases[i].input), step, cases[i].max, cases[i].expected);

        TESTS_EXIT();
}
