/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * /etc/flashd/flashd.conf is edited by hand: any text must either load or
 * be refused with a message naming the line, never crash flashd at start.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon-config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        Config *c = NULL;
        char *text, *error = NULL;
        int r;

        text = malloc(size + 1);
        if (!text)
                return 0;
        memcpy(text, data, size);
        text[size] = '\0';
        assert(config_new(&c) >= 0);
        r = config_load_string(c, text, &error);
        /* a refusal always says why */
        assert(r >= 0 || error);
        free(error);
        config_free(c);
        free(text);
        return 0;
}
