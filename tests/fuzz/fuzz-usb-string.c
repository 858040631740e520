/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "codec/dfuse-layout.h"
#include "codec/usb-string.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        DfuseLayout *l = NULL;
        bool patched;
        char *s = NULL;

        if (usb_string_descriptor_decode(data, size, &s, &patched) < 0)
                return 0;
        /* What the daemon does next with an alt-setting string. */
        assert(strlen(s) <= size * 2);
        if (dfuse_layout_parse(s, strlen(s), &l) >= 0)
                dfuse_layout_free(l);
        free(s);
        return 0;
}
