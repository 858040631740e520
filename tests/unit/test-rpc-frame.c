/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>

#include "util/macros.h"
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

/* Messages above `small` bytes with more than 2 structural tokens are
 * oversized; each output item is "<seq>:<frame>" (or "<seq>:!"). */
static void run_small(const char *input, size_t step, size_t small, const char *expected)
{
        RpcFrameReader *r;
        char out[512] = "";
        size_t input_len = strlen(input);

        CHECK_INT(rpc_frame_reader_new(&r, 100), 0);
        rpc_frame_reader_set_small_limit(r, small, 2);
        for (size_t off = 0; off < input_len; off += step) {
                size_t n = MIN(step, input_len - off);
                int k = rpc_frame_reader_feed(r, input + off, n);
                CHECK(k == 0 || k == -EMSGSIZE);
                for (;;) {
                        char *f = NULL;
                        uint64_t seq = rpc_frame_reader_head_seq(r);
                        int m = rpc_frame_reader_next(r, &f, NULL);
                        if (m == 0)
                                break;
                        char item[128];
                        snprintf(item, sizeof(item), "%s%u:%s", out[0] ? "|" : "", (unsigned)seq,
                                 m == -EMSGSIZE ? "!" : f);
                        strcat(out, item);
                        free(f);
                }
        }
        CHECK_STR(out, expected);
        rpc_frame_reader_free(r);
}

static void test_sequence_numbers(void)
{
        RpcFrameReader *r;
        char *f = NULL;

        CHECK_INT(rpc_frame_reader_new(&r, 100), 0);
        CHECK_INT((int)rpc_frame_reader_open_seq(r), 0);
        CHECK(!rpc_frame_reader_mid_frame(r));
        CHECK_INT(rpc_frame_reader_feed(r,
                                        "a\x03"
                                        "b",
                                        3),
                  0);
        CHECK_INT((int)rpc_frame_reader_open_seq(r), 1);
        CHECK(rpc_frame_reader_mid_frame(r));
        CHECK_INT((int)rpc_frame_reader_open_len(r), 1);
        CHECK_INT(rpc_frame_reader_discard_open(r), 0);
        CHECK_INT((int)rpc_frame_reader_open_len(r), 0);
        CHECK_INT(rpc_frame_reader_feed(r,
                                        "bb\x03"
                                        "c\x03",
                                        5),
                  0);
        CHECK_INT((int)rpc_frame_reader_open_seq(r), 3);
        CHECK(!rpc_frame_reader_mid_frame(r));
        CHECK_INT(rpc_frame_reader_next(r, &f, NULL), 1);
        CHECK_STR(f, "a");
        free(f);
        CHECK_INT(rpc_frame_reader_next(r, &f, NULL), -EMSGSIZE);
        CHECK_INT((int)rpc_frame_reader_head_seq(r), 2);
        CHECK_INT(rpc_frame_reader_next(r, &f, NULL), 1);
        CHECK_STR(f, "c");
        free(f);
        CHECK_INT(rpc_frame_reader_next(r, &f, NULL), 0);
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

        static const struct {
                const char *input;
                size_t small;
                const char *expected;
        } small_cases[] = {
                /* short messages may have any number of tokens */
                { "[1,1,1,1]\x03", 10, "0:[1,1,1,1]" },
                /* long ones only if they are mostly one string */
                { "{\"d\":\"xxxxxxxxxxxxxxxxxxxxxxxx\"}\x03", 10, "0:{\"d\":\"xxxxxxxxxxxxxxxxxxxxxxxx\"}" },
                { "[1,1,1,1,1,1,1,1,1,1,1]\x03ok\x03", 10, "0:!|1:ok" },
                /* separators inside strings (with escaped quotes) do not count */
                { "{\"d\":\"a,b,c,\\\",[{:\"}\x03", 10, "0:{\"d\":\"a,b,c,\\\",[{:\"}" },
                { "a\x03[1,1,1,1,1,1,1,1,1,1,1,1]\x03"
                  "b\x03",
                  10, "0:a|1:!|2:b" },
                { "[1,1,1,1,1,1,1,1,1,1,1,1]\x03[2,2,2,2,2,2,2,2,2,2,2]\x03z\x03", 10, "0:!|1:!|2:z" },
        };
        for (size_t i = 0; i < ELEMENTSOF(small_cases); i++)
                for (size_t step = 1; step <= 7; step++)
                        run_small(small_cases[i].input, step, small_cases[i].small, small_cases[i].expected);
        test_sequence_numbers();

        TESTS_EXIT();
}
