/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>

#include "codec/katapult-proto.h"
#include "util/macros.h"
#include "tests.h"

static void test_crc(void)
{
        static const struct {
                const char *data;
                size_t len;
                uint16_t crc;
        } cases[] = {
                /* the CRC-16/MCRF4XX check value */
                { "123456789", 9, 0x6f91 },
                { "", 0, 0xffff },
                /* protocol.md's literal NACK and ERROR frames: f1 00 -> 68 95, f2 00 -> 00 bf */
                { "\xf1\x00", 2, 0x9568 },
                { "\xf2\x00", 2, 0xbf00 },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                CHECK_INT(katapult_crc16(KATAPULT_CRC16_INIT, cases[i].data, cases[i].len), cases[i].crc);

        /* Incremental use gives the same result. */
        uint16_t c = katapult_crc16(KATAPULT_CRC16_INIT, "1234", 4);
        CHECK_INT(katapult_crc16(c, "56789", 5), 0x6f91);
}

static void test_encode(void)
{
        static const struct {
                uint8_t cmd;
                const char *payload;
                size_t size;
                int expected_len;
                const char *expected;
        } cases[] = {
                { KATAPULT_REPLY_NACK, "", 0, 8, "\x01\x88\xf1\x00\x68\x95\x99\x03" },
                { KATAPULT_REPLY_ERROR, "", 0, 8, "\x01\x88\xf2\x00\x00\xbf\x99\x03" },
                { KATAPULT_CMD_REQUEST_BLOCK, "\x00\x80\x00\x08", 4, 12, NULL },
                { KATAPULT_CMD_CONNECT, "abc", 3, -EINVAL, NULL },
                { KATAPULT_CMD_CONNECT, "abcd", 1024, -EINVAL, NULL },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                uint8_t buf[KATAPULT_FRAME_MAX];
                int len = katapult_frame_encode(cases[i].cmd, cases[i].payload, cases[i].size, buf,
                                                sizeof(buf));
                CHECK_INT(len, cases[i].expected_len);
                if (cases[i].expected)
                        CHECK(memcmp(buf, cases[i].expected, (size_t)len) == 0);
                if (len > 0) {
                        /* Round trip through the decoder. */
                        KatapultDecoder d;
                        KatapultFrame f;
                        katapult_decoder_init(&d);
                        CHECK_INT(katapult_decoder_feed(&d, buf, (size_t)len), len);
                        CHECK_INT(katapult_decoder_next(&d, &f), 1);
                        CHECK_INT(f.cmd, cases[i].cmd);
                        CHECK_INT(f.size, cases[i].size);
                        CHECK(f.size == 0 || memcmp(f.payload, cases[i].payload, f.size) == 0);
                        CHECK_INT(katapult_decoder_next(&d, &f), 0);
                }
        }

        uint8_t small[10];
        CHECK_INT(katapult_frame_encode(0x11, "abcd", 4, small, sizeof(small)), -ENOBUFS);
}

/* Build a stream from a little language: 'F<c>' a valid empty frame with
 * cmd c, 'P<c>' a frame with cmd c and payload "WXYZ", 'C' the same as P
 * with its CRC broken, 'T' with its trailer broken, 'L' a frame whose
 * length byte claims more than follows, 'g' a garbage byte, 'h' a stray
 * header 01 88. */
static size_t build(const char *spec, uint8_t *out)
{
        size_t n = 0;
        for (const char *s = spec; *s; s++) {
                uint8_t frame[64];
                int len;
                switch (*s) {
                case 'F':
                        s++;
                        len = katapult_frame_encode((uint8_t)*s, NULL, 0, frame, sizeof(frame));
                        break;
                case 'P':
                case 'C':
                case 'T':
                        len = katapult_frame_encode(s[0] == 'P' ? (uint8_t)s[1] : 0xa0, "WXYZ", 4, frame,
                                                    sizeof(frame));
                        if (*s == 'C')
                                frame[8] ^= 0x01;
                        if (*s == 'T')
                                frame[11] = 0x04;
                        if (*s == 'P')
                                s++;
                        break;
                case 'L':
                        len = katapult_frame_encode(0xa0, "WXYZ", 4, frame, sizeof(frame));
                        frame[3] = 9;
                        break;
                case 'g':
                        frame[0] = 0x7e;
                        len = 1;
                        break;
                case 'h':
                        frame[0] = 0x01;
                        frame[1] = 0x88;
                        len = 2;
                        break;
                default:
                        frame[0] = (uint8_t)*s;
                        len = 1;
                        break;
                }
                memcpy(out + n, frame, (size_t)len);
                n += (size_t)len;
        }
        return n;
}

static void test_decoder(void)
{
        static const struct {
                const char *spec;
                const char *frames; /* cmd letters of decoded frames ('p' = payload "WXYZ") */
        } cases[] = {
                { "", "" },
                { "Fa", "a" },
                { "FaFbFc", "abc" },
                { "gggFa", "a" },
                { "ggg", "" },
                { "Pa", "p" },
                /* a broken frame is skipped, the next one is found */
                { "CFb", "b" },
                { "TFb", "b" },
                { "CTCPa", "p" },
                /* a stray header right before a frame */
                { "hFa", "a" },
                { "hhPaFb", "pb" },
                /* 0x01 bytes inside garbage */
                { "\x01\x01\x01"
                  "Fa",
                  "a" },
                /* a length byte that claims too much swallows what follows
                 * until enough bytes arrive; then the scan resumes inside */
                { "LFaFbFcFdFe", "abcde" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                uint8_t stream[4096];
                size_t n = build(cases[i].spec, stream);
                /* Every way of splitting the input gives the same frames. */
                for (size_t step = 1; step <= n + 1; step = step < 8 ? step + 1 : step * 2) {
                        KatapultDecoder d;
                        char got[64] = "";
                        size_t ng = 0;
                        katapult_decoder_init(&d);
                        for (size_t off = 0; off < n;) {
                                size_t k = katapult_decoder_feed(&d, stream + off, MIN(step, n - off));
                                off += k;
                                KatapultFrame f;
                                while (katapult_decoder_next(&d, &f) > 0 && ng + 1 < sizeof(got)) {
                                        if (f.size == 4 && memcmp(f.payload, "WXYZ", 4) == 0)
                                                got[ng++] = 'p';
                                        else
                                                got[ng++] = (char)f.cmd;
                                }
                        }
                        got[ng] = 0;
                        if (strcmp(got, cases[i].frames) != 0)
                                fprintf(stderr, "spec \"%s\" step %zu\n", cases[i].spec, step);
                        CHECK_STR(got, cases[i].frames);
                }
        }
}

static void test_ack(void)
{
        static const struct {
                uint8_t code;
                const char *payload;
                size_t size;
                uint8_t cmd;
                int expected;
                size_t data_size;
        } cases[] = {
                { KATAPULT_REPLY_ACK, "\x12\0\0\0\x00\x80\x00\x08", 8, 0x12, 0, 4 },
                { KATAPULT_REPLY_ACK, "\x15\0\0\0", 4, 0x15, 0, 0 },
                { KATAPULT_REPLY_ACK, "\x12\0\0\0", 4, 0x14, -EBADMSG, 0 },
                { KATAPULT_REPLY_ACK, "", 0, 0x15, -EBADMSG, 0 },
                { KATAPULT_REPLY_NACK, "", 0, 0x11, -EAGAIN, 0 },
                { KATAPULT_REPLY_BUSY, "", 0, 0x11, -EAGAIN, 0 },
                { KATAPULT_REPLY_ERROR, "", 0, 0x11, -EREMOTEIO, 0 },
                { 0x42, "", 0, 0x11, -EPROTO, 0 },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                KatapultFrame f = { .cmd = cases[i].code,
                                    .payload = (const uint8_t *)cases[i].payload,
                                    .size = cases[i].size };
                const uint8_t *data = NULL;
                size_t size = 99;
                CHECK_INT(katapult_ack_parse(&f, cases[i].cmd, &data, &size), cases[i].expected);
                if (cases[i].expected == 0)
                        CHECK_INT(size, cases[i].data_size);
        }
}

static void test_connect(void)
{
        /* Payloads after the echoed command word, as Katapult's
         * command_connect() lays them out. */
        static const struct {
                const char *payload;
                size_t size;
                int expected;
                uint32_t version, start, block;
                const char *mcu, *sw;
        } cases[] = {
                /* 1.1.0: mcu padded to a word, a NUL word, the version */
                { "\x00\x01\x01\x00"
                  "\x00\x80\x00\x08"
                  "\x40\x00\x00\x00"
                  "stm32f446xx\0"
                  "\0\0\0\0"
                  "v0.0.1-72\0\0\0",
                  40, 0, 0x010100, 0x08008000, 64, "stm32f446xx", "v0.0.1-72" },
                /* mcu exactly a word multiple */
                { "\x00\x01\x01\x00"
                  "\x00\x40\x00\x10"
                  "\x00\x01\x00\x00"
                  "rp2040\0\0"
                  "\0\0\0\0"
                  "v1\0\0",
                  28, 0, 0x010100, 0x10004000, 256, "rp2040", "v1" },
                /* 1.0.0: everything after the numbers is the MCU */
                { "\x00\x00\x01\x00"
                  "\x00\x20\x00\x08"
                  "\x00\x02\x00\x00"
                  "stm32g0b1xx\0",
                  24, 0, 0x010000, 0x08002000, 512, "stm32g0b1xx", "" },
                /* 1.1.0 build without a version */
                { "\x00\x01\x01\x00"
                  "\x00\x80\x00\x08"
                  "\x80\x00\x00\x00"
                  "stm32h723xx\0",
                  24, 0, 0x010100, 0x08008000, 128, "stm32h723xx", "" },
                /* bad block sizes */
                { "\x00\x01\x01\x00"
                  "\x00\x80\x00\x08"
                  "\x20\x00\x00\x00"
                  "stm32\0\0\0",
                  20, -ERANGE },
                { "\x00\x01\x01\x00"
                  "\x00\x80\x00\x08"
                  "\x00\x04\x00\x00"
                  "stm32\0\0\0",
                  20, -ERANGE },
                { "\x00\x01\x01\x00"
                  "\x00\x80\x00\x08"
                  "\x60\x00\x00\x00"
                  "stm32\0\0\0",
                  20, -ERANGE },
                /* too short, no MCU, control bytes in the MCU */
                { "\x00\x01\x01\x00"
                  "\x00\x80\x00\x08",
                  8, -EBADMSG },
                { "\x00\x01\x01\x00"
                  "\x00\x80\x00\x08"
                  "\x40\x00\x00\x00"
                  "\0\0\0\0",
                  16, -EBADMSG },
                { "\x00\x01\x01\x00"
                  "\x00\x80\x00\x08"
                  "\x40\x00\x00\x00"
                  "st\x1bm",
                  16, -EILSEQ },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                uint8_t payload[128];
                katapult_put_le32(payload, KATAPULT_CMD_CONNECT);
                memcpy(payload + 4, cases[i].payload, cases[i].size);
                KatapultFrame f = { .cmd = KATAPULT_REPLY_ACK,
                                    .payload = payload,
                                    .size = 4 + cases[i].size };
                KatapultConnectInfo info = {};
                int r = katapult_connect_parse(&f, &info);
                if (r != cases[i].expected)
                        fprintf(stderr, "connect case %zu\n", i);
                CHECK_INT(r, cases[i].expected);
                if (r < 0)
                        continue;
                CHECK_INT(info.proto_version, cases[i].version);
                CHECK_INT(info.start_address, cases[i].start);
                CHECK_INT(info.block_size, cases[i].block);
                CHECK_STR(info.mcu, cases[i].mcu);
                CHECK_STR(info.software_version, cases[i].sw);

                /* The encoder produces what the parser reads. */
                uint8_t enc[256];
                int len = katapult_connect_encode(&info, enc + 4, sizeof(enc) - 4);
                CHECK(len > 0);
                katapult_put_le32(enc, KATAPULT_CMD_CONNECT);
                KatapultFrame g = { .cmd = KATAPULT_REPLY_ACK, .payload = enc, .size = 4 + (size_t)len };
                KatapultConnectInfo again = {};
                CHECK_INT(katapult_connect_parse(&g, &again), 0);
                CHECK(memcmp(&info, &again, sizeof(info)) == 0);
        }

        char v[16];
        CHECK_STR(katapult_proto_version_format(0x010100, v, sizeof(v)), "1.1.0");
        CHECK(katapult_block_size_valid(64) && katapult_block_size_valid(512));
        CHECK(!katapult_block_size_valid(32) && !katapult_block_size_valid(1024) &&
              !katapult_block_size_valid(96));
        CHECK_STR(katapult_command_to_string(KATAPULT_CMD_REQUEST_BLOCK), "REQUEST_BLOCK");
}

int main(void)
{
        test_crc();
        test_encode();
        test_decoder();
        test_ack();
        test_connect();
        TESTS_EXIT();
}
