/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The Katapult frame decoder as the session sees a serial line: arbitrary
 * bytes in arbitrary chunks. The first input byte picks the chunk size.
 * Every decoded frame is checked (sizes, CRC re-computed) and run through
 * the reply parsers.
 */
#include <assert.h>
#include <string.h>

#include "codec/katapult-proto.h"
#include "util/macros.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static KatapultDecoder d;
        size_t step, total_frames = 0;

        if (size == 0)
                return 0;
        step = (size_t)data[0] % 64 + 1;
        data++;
        size--;

        katapult_decoder_init(&d);
        for (size_t off = 0; off < size;) {
                size_t n = katapult_decoder_feed(&d, data + off, MIN(step, size - off));
                off += n;
                KatapultFrame f;
                while (katapult_decoder_next(&d, &f) > 0) {
                        total_frames++;
                        assert(f.size % 4 == 0 && f.size <= KATAPULT_PAYLOAD_MAX);

                        /* Re-encoding gives a frame that decodes the same. */
                        uint8_t buf[KATAPULT_FRAME_MAX];
                        int len = katapult_frame_encode(f.cmd, f.payload, f.size, buf, sizeof(buf));
                        assert(len == (int)(KATAPULT_FRAME_OVERHEAD + f.size));
                        assert(memcmp(buf + 4, f.payload, f.size) == 0);

                        KatapultConnectInfo info;
                        if (katapult_connect_parse(&f, &info) == 0) {
                                assert(katapult_block_size_valid(info.block_size));
                                assert(strlen(info.mcu) > 0 && strlen(info.mcu) < sizeof(info.mcu));
                                assert(strlen(info.software_version) < sizeof(info.software_version));
                        }
                        const uint8_t *p;
                        size_t n2;
                        if (katapult_ack_parse(&f, KATAPULT_CMD_REQUEST_BLOCK, &p, &n2) == 0)
                                assert(n2 + 4 == f.size);
                }
        }
        assert(total_frames == d.n_frames);
        return 0;
}
