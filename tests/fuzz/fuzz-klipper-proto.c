/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "codec/klipper-proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * The input is a byte stream from a board: split it into blocks as the
 * identify session does, decode each block's first message, and treat
 * every identify_response's data as dictionary chunks; then try the whole
 * input as a zlib dictionary too.
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        uint8_t *dict = malloc(size + 1);
        size_t pos = 0, have = 0;
        KlipperDictInfo info = {};

        if (!dict)
                return 0;
        while (pos < size) {
                int r = klipper_block_check(data + pos, size - pos);
                if (r == 0)
                        break;
                if (r < 0) {
                        size_t skip = klipper_block_resync(data + pos, size - pos);
                        assert(skip > 0 && skip <= size - pos);
                        pos += skip;
                        continue;
                }
                assert(r >= (int)KLIPPER_MSG_MIN && (size_t)r <= size - pos);
                KlipperIdentifyMsg m;
                if (klipper_identify_msg_decode(data + pos + 2, r - KLIPPER_MSG_OVERHEAD, &m) == 0 &&
                    m.msgid == KLIPPER_MSGID_IDENTIFY_RESPONSE && m.offset == have) {
                        assert(m.data >= data + pos && m.data + m.size <= data + pos + r);
                        memcpy(dict + have, m.data, m.size);
                        have += m.size;
                }
                pos += r;
        }
        if (klipper_dict_info_from_zlib(dict, have, &info, NULL) == 0)
                klipper_dict_info_clear(&info);
        if (klipper_dict_info_from_zlib(data, size, &info, NULL) == 0)
                klipper_dict_info_clear(&info);
        free(dict);
        return 0;
}
