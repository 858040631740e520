/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "boards/board-db.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        Board b = {};
        char *err = NULL;
        int r;

        r = board_db_parse_board((const char *)data, size, &b, &err);
        if (r >= 0) {
                /* Whatever the parser accepts holds its own promises. */
                assert(b.name && b.title && b.n_variants > 0);
                for (size_t i = 0; i < b.n_variants; i++) {
                        assert(b.variants[i].app_offset < b.variants[i].flash_size);
                        assert(b.variants[i].hints);
                        assert(board_reboot_to_string(b.variants[i].reboot));
                }
        } else
                assert(r != -EBADMSG || err);
        free(err);
        board_clear(&b);
        return 0;
}
