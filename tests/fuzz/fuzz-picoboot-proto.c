/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * PICOBOOT packets as the vboard ROM model and the session see them: the
 * command decoder (a valid command re-encodes to the same bytes), the
 * status decoder, and the RP2040 image checks on the input taken as a raw
 * image at 0x10000000.
 */
#include <assert.h>
#include <string.h>

#include "codec/picoboot-proto.h"
#include "codec/rp2040-image.h"
#include "util/macros.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        PicobootCmd c;
        PicobootCmdStatus s;
        uint8_t out[PICOBOOT_CMD_SIZE];
        int r;

        r = picoboot_cmd_decode(data, MIN(size, (size_t)PICOBOOT_CMD_SIZE), &c);
        if (r == PICOBOOT_OK) {
                switch (c.id) {
                case PICOBOOT_FLASH_ERASE:
                case PICOBOOT_READ:
                case PICOBOOT_WRITE:
                        picoboot_encode_range(out, c.token, c.id, c.addr, c.size);
                        assert(memcmp(out, data, 24) == 0);
                        break;
                case PICOBOOT_REBOOT:
                        picoboot_encode_reboot(out, c.token, c.addr, c.size, c.delay_ms);
                        assert(memcmp(out, data, 28) == 0);
                        break;
                case PICOBOOT_EXCLUSIVE_ACCESS:
                        picoboot_encode_exclusive(out, c.token, c.exclusive);
                        assert(memcmp(out, data, 17) == 0);
                        break;
                default:
                        break;
                }
        } else
                assert(r == -EBADMSG || (r > 0 && r < _PICOBOOT_STATUS_MAX));

        if (picoboot_status_decode(data, size, &s) == 0) {
                uint8_t b[PICOBOOT_STATUS_SIZE];
                picoboot_status_encode(b, &s);
                assert(memcmp(b, data, 9) == 0);
        }

        if (size > 0 && size <= 65536) {
                _cleanup_(flash_image_freep) FlashImage *img = NULL;
                _cleanup_free_ char *msg = NULL;
                ImageCheckTarget t;
                if (flash_image_parse_bin(data, size, RP2040_FLASH_BASE, &img, NULL) == 0) {
                        rp2040_check_target(&t, 2 * 1024 * 1024, 0, false);
                        r = rp2040_check_vector_table(img, &t, &msg);
                        assert(r == 0 || (r == -ENOEXEC && msg));
                }
        }
        return 0;
}
