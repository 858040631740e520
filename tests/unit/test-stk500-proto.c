/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>

#include "codec/stk500v1-proto.h"
#include "codec/stk500v2-proto.h"
#include "util/macros.h"
#include "tests.h"

static int decode_all(const uint8_t *buf, size_t len, Stk500v2Decoder *d, Stk500v2Message *ret)
{
        int got = 0;
        for (size_t i = 0; i < len; i++)
                if (stk500v2_decoder_push(d, buf[i], ret) > 0)
                        got++;
        return got;
}

static void test_v2_encode(void)
{
        static const struct {
                uint8_t seq;
                const char *body;
                size_t len;
                int expected_len;
                const char *expected;
        } cases[] = {
                /* AVR068's SIGN_ON: 1B 01 00 01 0E 01 14 */
                { 1, "\x01", 1, 7, "\x1b\x01\x00\x01\x0e\x01\x14" },
                { 0xff, "\x11\x01\x01", 3, 9, "\x1b\xff\x00\x03\x0e\x11\x01\x01\xf8" },
                { 0, "", 0, -EINVAL, NULL },
                { 0, "x", STK500V2_BODY_MAX + 1, -EINVAL, NULL },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                uint8_t buf[STK500V2_MSG_MAX];
                int len = stk500v2_encode(cases[i].seq, cases[i].body, cases[i].len, buf, sizeof(buf));
                CHECK_INT(len, cases[i].expected_len);
                if (cases[i].expected)
                        CHECK(memcmp(buf, cases[i].expected, (size_t)len) == 0);
        }
        uint8_t small[6];
        CHECK_INT(stk500v2_encode(1, "\x01", 1, small, sizeof(small)), -ENOBUFS);
}

static void test_v2_bodies(void)
{
        uint8_t buf[STK500V2_BODY_MAX], page[256];
        static const struct {
                uint32_t addr;
                bool ext;
                int r;
                const char *expected;
        } addrs[] = {
                { 0, false, 5, "\x06\x00\x00\x00\x00" },
                { 0x1fe, false, 5, "\x06\x00\x00\x00\xff" },
                /* 0x3E000 on the 2560: word 0x1F000, bit 31 set */
                { 0x3e000, true, 5, "\x06\x80\x01\xf0\x00" },
                { 0x20000, true, 5, "\x06\x80\x01\x00\x00" },
                { 3, false, -EINVAL, NULL },
        };

        for (size_t i = 0; i < ELEMENTSOF(addrs); i++) {
                int r = stk500v2_body_load_address(buf, addrs[i].addr, addrs[i].ext);
                CHECK_INT(r, addrs[i].r);
                if (addrs[i].expected)
                        CHECK(memcmp(buf, addrs[i].expected, 5) == 0);
        }

        for (size_t i = 0; i < sizeof(page); i++)
                page[i] = (uint8_t)i;
        CHECK_INT(stk500v2_body_program_flash(buf, page, 256), 266);
        CHECK_INT(buf[0], STK500V2_CMD_PROGRAM_FLASH_ISP);
        CHECK_INT(buf[1], 1);
        CHECK_INT(buf[2], 0);
        CHECK(memcmp(buf + 10, page, 256) == 0);
        CHECK_INT(stk500v2_body_program_flash(buf, page, 257), -EINVAL);
        CHECK_INT(stk500v2_body_program_flash(buf, page, 3), -EINVAL);
        CHECK_INT(stk500v2_body_read_flash(buf, 256), 4);
        CHECK(memcmp(buf, "\x14\x01\x00\x20", 4) == 0);
        CHECK_INT(stk500v2_body_read_flash(buf, 0), -EINVAL);
        CHECK_INT(stk500v2_body_read_signature(buf, 2), 6);
        CHECK(memcmp(buf, "\x1b\x04\x30\x00\x02\x00", 6) == 0);
        CHECK_INT(stk500v2_body_read_signature(buf, 3), -EINVAL);
        CHECK_INT(stk500v2_body_sign_on(buf), 1);
        CHECK_INT(stk500v2_body_leave_progmode(buf), 3);
        CHECK_INT(stk500v2_body_enter_progmode(buf), 12);

        /* the largest body (a 256-byte page) is one message */
        uint8_t msg[STK500V2_MSG_MAX];
        CHECK_INT(stk500v2_encode(7, buf, (size_t)stk500v2_body_program_flash(buf, page, 256), msg,
                                  sizeof(msg)),
                  272);
}

static void test_v2_decode(void)
{
        Stk500v2Decoder d;
        Stk500v2Message m;
        char name[16];
        uint8_t sig;
        const uint8_t *data;

        /* stk500boot's SIGN_ON answer: 01 00 08 "AVRISP_2" */
        static const uint8_t sign_on[] = { 0x01, 0x00, 0x08, 'A', 'V', 'R', 'I', 'S', 'P', '_', '2' };
        uint8_t buf[64];
        int len = stk500v2_encode(3, sign_on, sizeof(sign_on), buf, sizeof(buf));
        CHECK_INT(len, 17);

        /* garbage before, a broken frame, then the good one */
        uint8_t stream[128];
        size_t n = 0;
        stream[n++] = 0x00;
        stream[n++] = 0xff;
        memcpy(stream + n, buf, (size_t)len);
        stream[n + 8] ^= 0x40; /* body damaged: bad checksum */
        n += (size_t)len;
        memcpy(stream + n, buf, (size_t)len);
        n += (size_t)len;

        stk500v2_decoder_init(&d);
        CHECK_INT(decode_all(stream, n, &d, &m), 1);
        CHECK_INT(d.n_bad_checksum, 1);
        CHECK_INT(d.n_skipped, 2);
        CHECK_INT(m.seq, 3);
        CHECK_INT(stk500v2_sign_on_parse(&m, name, sizeof(name)), 0);
        CHECK_STR(name, "AVRISP_2");
        CHECK_INT(stk500v2_sign_on_parse(&m, name, 8), -EPROTO);
        CHECK_INT(stk500v2_reply_check(&m, STK500V2_CMD_LOAD_ADDRESS, 2, NULL), -EPROTO);

        /* oversized length field: dropped, resynchronised */
        static const uint8_t bad_size[] = { 0x1b, 0x01, 0x02, 0x00, 0x0e };
        stk500v2_decoder_init(&d);
        CHECK_INT(decode_all(bad_size, sizeof(bad_size), &d, &m), 0);
        CHECK_INT(d.n_bad_frame, 1);

        static const struct {
                const char *body;
                size_t len;
                int sig_r;
                uint8_t sig;
        } sigs[] = {
                { "\x1b\x00\x98\x00", 4, 0, 0x98 },    { "\x1b\xc0\x98\x00", 4, -EIO, 0 },
                { "\x1b\x00\x98", 3, -EPROTO, 0 },     { "\x1b\x00\x98\xc0", 4, -EIO, 0 },
                { "\x14\x00\x98\x00", 4, -EPROTO, 0 },
        };
        for (size_t i = 0; i < ELEMENTSOF(sigs); i++) {
                m = (Stk500v2Message){ .body = (const uint8_t *)sigs[i].body, .len = sigs[i].len };
                sig = 0;
                CHECK_INT(stk500v2_signature_parse(&m, &sig), sigs[i].sig_r);
                CHECK_INT(sig, sigs[i].sig);
        }

        uint8_t status = 0;
        m = (Stk500v2Message){ .body = (const uint8_t *)"\x13\xc9", .len = 2 };
        CHECK_INT(stk500v2_reply_check(&m, STK500V2_CMD_PROGRAM_FLASH_ISP, 2, &status), -EIO);
        CHECK_INT(status, STK500V2_STATUS_CMD_UNKNOWN);

        m = (Stk500v2Message){ .body = (const uint8_t *)"\x14\x00\xaa\xbb\x00", .len = 5 };
        CHECK_INT(stk500v2_read_flash_parse(&m, 2, &data), 0);
        CHECK(data[0] == 0xaa && data[1] == 0xbb);
        CHECK_INT(stk500v2_read_flash_parse(&m, 4, &data), -EPROTO);
        CHECK_INT(stk500v2_read_flash_parse(&m, 1, &data), -EPROTO);
}

static void test_v1(void)
{
        uint8_t buf[STK500V1_CMD_MAX], page[128];
        Stk500v1Reply r;

        CHECK_INT(stk500v1_cmd_get_sync(buf), 2);
        CHECK(memcmp(buf, "\x30\x20", 2) == 0);
        CHECK_INT(stk500v1_cmd_load_address(buf, 0x7e00), 4);
        CHECK(memcmp(buf, "\x55\x00\x3f\x20", 4) == 0);
        CHECK_INT(stk500v1_cmd_load_address(buf, 0x20000), -EINVAL);
        CHECK_INT(stk500v1_cmd_load_address(buf, 1), -EINVAL);
        memset(page, 0x5a, sizeof(page));
        CHECK_INT(stk500v1_cmd_prog_page(buf, page, 128), 133);
        CHECK(memcmp(buf, "\x64\x00\x80\x46", 4) == 0);
        CHECK_INT(buf[132], STK500V1_CRC_EOP);
        CHECK_INT(stk500v1_cmd_prog_page(buf, page, 0), -EINVAL);
        CHECK_INT(stk500v1_cmd_read_page(buf, 128), 5);
        CHECK(memcmp(buf, "\x74\x00\x80\x46\x20", 5) == 0);
        CHECK_INT(stk500v1_cmd_read_sign(buf), 2);
        CHECK_INT(stk500v1_cmd_leave_progmode(buf), 2);
        CHECK_INT(stk500v1_cmd_enter_progmode(buf), 2);

        static const struct {
                size_t expect;
                const char *in;
                size_t len;
                int last;
        } replies[] = {
                { 0, "\x14\x10", 2, 1 },           { 3, "\x14\x1e\x95\x0f\x10", 5, 1 },
                { 3, "\x14\x1e\x95\x0f", 4, 0 },   { 0, "\x15", 1, -EPROTO },
                { 0, "\x00\x14\x10", 3, -EPROTO }, { 0, "\x14\x11", 2, -EIO },
                { 1, "\x14\x00\x12", 3, -EIO },    { 0, "\x14\x10\x99", 3, 1 },
        };
        for (size_t i = 0; i < ELEMENTSOF(replies); i++) {
                int last = 0;
                CHECK_INT(stk500v1_reply_init(&r, replies[i].expect), 0);
                for (size_t j = 0; j < replies[i].len; j++)
                        last = stk500v1_reply_push(&r, (uint8_t)replies[i].in[j]);
                CHECK_INT(last, replies[i].last);
        }
        CHECK_INT(stk500v1_reply_init(&r, 3), 0);
        for (size_t j = 0; j < 5; j++)
                stk500v1_reply_push(&r, (uint8_t) "\x14\x1e\x95\x0f\x10"[j]);
        CHECK(memcmp(r.data, "\x1e\x95\x0f", 3) == 0);
        CHECK_INT(stk500v1_reply_init(&r, 257), -EINVAL);
}

int main(void)
{
        test_v2_encode();
        test_v2_bodies();
        test_v2_decode();
        test_v1();
        TESTS_EXIT();
}
