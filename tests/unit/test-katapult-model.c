/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The virtual boards' Katapult model answers as Katapult's firmware does:
 * a table of command frames in, reply codes (and flash effects) out.
 */
#include <errno.h>

#include "../vboard/katapult-model.h"
#include "util/macros.h"
#include "tests.h"

#define BASE  0x08000000u
#define START 0x08008000u
#define BS    64u

typedef enum Op {
        OP_CONNECT,
        OP_BLOCK,       /* SEND_BLOCK at addr with byte pattern `fill` */
        OP_BLOCK_SHORT, /* SEND_BLOCK with half a block of data */
        OP_READ,        /* REQUEST_BLOCK at addr, expect `fill` pattern */
        OP_EOF,         /* expect page count `arg` */
        OP_COMPLETE,
        OP_UNKNOWN, /* command 0x90 */
        OP_GARBAGE, /* bytes that are no frame */
        OP_BAD_CRC, /* a CONNECT with its CRC broken */
} Op;

typedef struct Step {
        Op op;
        uint32_t addr;
        uint8_t fill;
        uint32_t arg;
        uint8_t reply; /* expected reply code; 0 = no reply at all */
} Step;

static size_t frame_of(const Step *st, uint8_t *out)
{
        uint8_t payload[4 + BS];
        int len;

        switch (st->op) {
        case OP_CONNECT:
        case OP_BAD_CRC:
                len = katapult_frame_encode(KATAPULT_CMD_CONNECT, NULL, 0, out, KATAPULT_FRAME_MAX);
                if (st->op == OP_BAD_CRC)
                        out[4] ^= 0xff;
                return (size_t)len;
        case OP_BLOCK:
        case OP_BLOCK_SHORT:
                katapult_put_le32(payload, st->addr);
                memset(payload + 4, st->fill, BS);
                return (size_t)katapult_frame_encode(KATAPULT_CMD_SEND_BLOCK, payload,
                                                     st->op == OP_BLOCK ? 4 + BS : 4 + BS / 2, out,
                                                     KATAPULT_FRAME_MAX);
        case OP_READ:
                katapult_put_le32(payload, st->addr);
                return (size_t)katapult_frame_encode(KATAPULT_CMD_REQUEST_BLOCK, payload, 4, out,
                                                     KATAPULT_FRAME_MAX);
        case OP_EOF:
                return (size_t)katapult_frame_encode(KATAPULT_CMD_EOF, NULL, 0, out, KATAPULT_FRAME_MAX);
        case OP_COMPLETE:
                return (size_t)katapult_frame_encode(KATAPULT_CMD_COMPLETE, NULL, 0, out,
                                                     KATAPULT_FRAME_MAX);
        case OP_UNKNOWN:
                return (size_t)katapult_frame_encode(0x90, NULL, 0, out, KATAPULT_FRAME_MAX);
        case OP_GARBAGE:
                memcpy(out, "\x7e\x7e garbage \x01\x02", 12);
                return 12;
        }
        return 0;
}

int main(void)
{
        static const FlashSector sectors[] = {
                { 0x08000000, 16384 }, { 0x08004000, 16384 }, { 0x08008000, 16384 },
                { 0x0800c000, 16384 }, { 0x08010000, 65536 },
        };
        static const Step steps[] = {
                { OP_CONNECT, .reply = KATAPULT_REPLY_ACK },
                /* first block of a sector that holds old data: erase, write */
                { OP_BLOCK, START, 0x11, .reply = KATAPULT_REPLY_ACK },
                /* a retransmission (same data, rest of the sector erased) changes nothing */
                { OP_BLOCK, START, 0x11, .reply = KATAPULT_REPLY_ACK },
                { OP_READ, START, 0x11, .reply = KATAPULT_REPLY_ACK },
                { OP_BLOCK, START + BS, 0x22, .reply = KATAPULT_REPLY_ACK },
                { OP_BLOCK, START + BS, 0x22, .reply = KATAPULT_REPLY_ACK },
                /* a different block on written flash: out of order */
                { OP_BLOCK, START + BS, 0x33, .reply = KATAPULT_REPLY_ERROR },
                /* below the application start, unaligned, wrong size */
                { OP_BLOCK, START - BS, 0x44, .reply = KATAPULT_REPLY_ERROR },
                { OP_BLOCK, START + 2 * BS + 4, 0x44, .reply = KATAPULT_REPLY_ERROR },
                { OP_BLOCK_SHORT, START + 2 * BS, 0x44, .reply = KATAPULT_REPLY_ERROR },
                /* the next sector, then EOF counts the sectors started */
                { OP_BLOCK, 0x0800c000, 0x55, .reply = KATAPULT_REPLY_ACK },
                { OP_EOF, .arg = 2, .reply = KATAPULT_REPLY_ACK },
                { OP_READ, 0x0800c000, 0x55, .reply = KATAPULT_REPLY_ACK },
                { OP_READ, START + BS, 0x22, .reply = KATAPULT_REPLY_ACK },
                /* unknown commands get ERROR; garbage one NACK per loss of sync */
                { OP_UNKNOWN, .reply = KATAPULT_REPLY_ERROR },
                { OP_GARBAGE, .reply = KATAPULT_REPLY_NACK },
                { OP_GARBAGE, .reply = 0 },
                { OP_CONNECT, .reply = KATAPULT_REPLY_ACK },
                { OP_BAD_CRC, .reply = KATAPULT_REPLY_NACK },
                /* a sector's first block again after later blocks: Katapult
                 * (src/stm32/flash.c) erases the sector and starts over */
                { OP_BLOCK, START, 0x11, .reply = KATAPULT_REPLY_ACK },
                { OP_READ, START + BS, 0xff, .reply = KATAPULT_REPLY_ACK },
                { OP_COMPLETE, .reply = KATAPULT_REPLY_ACK },
        };
        FlashModel *flash;
        KatapultModel *m;

        CHECK_INT(flash_model_new(&flash, BASE, 128 * 1024, true, sectors, ELEMENTSOF(sectors)), 0);
        uint8_t old[2 * 16384];
        memset(old, 0xa5, sizeof(old));
        flash_model_load(flash, START, old, sizeof(old)); /* an old application in both sectors */

        KatapultModelConfig cfg = { .start_address = START, .block_size = BS, .mcu = "stm32f446xx" };
        CHECK_INT(katapult_model_new(&m, flash, &cfg), 0);
        /* invalid configurations */
        KatapultModel *bad;
        KatapultModelConfig c2 = cfg;
        c2.block_size = 96;
        CHECK_INT(katapult_model_new(&bad, flash, &c2), -EINVAL);
        c2 = cfg;
        c2.start_address = START + 4;
        CHECK_INT(katapult_model_new(&bad, flash, &c2), -EINVAL);

        for (size_t i = 0; i < ELEMENTSOF(steps); i++) {
                const Step *st = &steps[i];
                uint8_t in[KATAPULT_FRAME_MAX], out[4 * KATAPULT_FRAME_MAX];
                size_t n = frame_of(st, in);

                katapult_model_feed(m, in, n);
                size_t got = katapult_model_take_output(m, out, sizeof(out), NULL);

                KatapultDecoder d;
                KatapultFrame f;
                katapult_decoder_init(&d);
                katapult_decoder_feed(&d, out, got);
                int r = katapult_decoder_next(&d, &f);
                if (st->reply == 0) {
                        CHECK_INT(got, 0);
                        continue;
                }
                if (r != 1 || f.cmd != st->reply)
                        fprintf(stderr, "step %zu\n", i);
                CHECK_INT(r, 1);
                if (r != 1)
                        continue;
                CHECK_INT(f.cmd, st->reply);
                if (f.cmd != KATAPULT_REPLY_ACK)
                        continue;

                const uint8_t *data;
                size_t size;
                switch (st->op) {
                case OP_CONNECT: {
                        KatapultConnectInfo info;
                        CHECK_INT(katapult_connect_parse(&f, &info), 0);
                        CHECK_INT(info.start_address, START);
                        CHECK_INT(info.block_size, BS);
                        CHECK_STR(info.mcu, "stm32f446xx");
                        CHECK_INT(info.proto_version, KATAPULT_PROTO_1_1_0);
                        break;
                }
                case OP_BLOCK:
                        CHECK_INT(katapult_ack_parse(&f, KATAPULT_CMD_SEND_BLOCK, &data, &size), 0);
                        CHECK_INT(size, 4);
                        CHECK_INT(katapult_get_le32(data), st->addr);
                        break;
                case OP_READ:
                        CHECK_INT(katapult_ack_parse(&f, KATAPULT_CMD_REQUEST_BLOCK, &data, &size), 0);
                        CHECK_INT(size, 4 + BS);
                        CHECK_INT(katapult_get_le32(data), st->addr);
                        for (size_t k = 0; k < BS; k++)
                                CHECK_INT(data[4 + k], st->fill);
                        break;
                case OP_EOF:
                        CHECK_INT(katapult_ack_parse(&f, KATAPULT_CMD_EOF, &data, &size), 0);
                        CHECK_INT(size, 4);
                        CHECK_INT(katapult_get_le32(data), st->arg);
                        break;
                case OP_COMPLETE:
                        CHECK_INT(katapult_ack_parse(&f, KATAPULT_CMD_COMPLETE, &data, &size), 0);
                        CHECK(katapult_model_completed(m));
                        break;
                case OP_BLOCK_SHORT:
                case OP_UNKNOWN:
                case OP_GARBAGE:
                case OP_BAD_CRC:
                        CHECK(false);
                        break;
                }
        }

        const KatapultModelStats *s = katapult_model_get_stats(m);
        CHECK_INT(s->sectors_erased, 3);
        CHECK_INT(s->blocks_written, 4);
        CHECK_INT(s->blocks_repeated, 2);
        /* the rest of the first sector was erased, the bootloader untouched */
        uint8_t b;
        flash_model_read(flash, START + 5 * BS, &b, 1);
        CHECK_INT(b, 0xff);
        flash_model_read(flash, 0x08010000 - 1, &b, 1);
        CHECK_INT(b, 0xff);
        /* not plausible: 0x11 0x11 ... is no vector table */
        CHECK(!katapult_model_app_plausible(m));

        /* quirks: NACK and BUSY instead of executing, corrupted replies */
        KatapultModelQuirks q = {
                .nack_every = 2, .busy_every = 3, .corrupt_every = 1, .reply_delay_us = 5
        };
        katapult_model_set_quirks(m, &q);
        uint8_t in[KATAPULT_FRAME_MAX], out[KATAPULT_FRAME_MAX];
        Step connect = { OP_CONNECT };
        size_t n = frame_of(&connect, in);
        katapult_model_feed(m, in, n);
        uint64_t delay = 0;
        size_t got = katapult_model_take_output(m, out, sizeof(out), &delay);
        CHECK(got > 0);
        CHECK_INT(delay, 5);
        KatapultDecoder d;
        KatapultFrame f;
        katapult_decoder_init(&d);
        katapult_decoder_feed(&d, out, got);
        CHECK_INT(katapult_decoder_next(&d, &f), 0); /* corrupted: no valid frame */
        CHECK(katapult_model_get_stats(m)->corrupted > 0);

        katapult_model_free(m);
        flash_model_free(flash);
        TESTS_EXIT();
}
