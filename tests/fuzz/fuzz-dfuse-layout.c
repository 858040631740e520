/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "codec/dfuse-layout.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        DfuseLayout *l = NULL, *again = NULL;
        char *s;

        if (dfuse_layout_parse((const char *)data, size, &l) < 0)
                return 0;

        /* Invariants: at least one segment, a consistent sector lookup, and a
         * canonical form that parses back complete with the same size. */
        assert(l->n_regions > 0 && l->regions[0].n_segments > 0);
        assert(l->truncated == !!l->diagnostic);
        for (size_t i = 0; i < l->n_regions; i++)
                for (size_t j = 0; j < l->regions[i].n_segments; j++) {
                        const DfuseSegment *seg = &l->regions[i].segments[j];
                        uint32_t start, sz;
                        assert(dfuse_layout_find_sector(l, seg->address, NULL, &start, &sz));
                }
        s = dfuse_layout_to_string(l);
        assert(s);
        assert(dfuse_layout_parse(s, strlen(s), &again) == 0);
        assert(!again->truncated);
        assert(dfuse_layout_total_size(again) == dfuse_layout_total_size(l));
        free(s);
        dfuse_layout_free(again);
        dfuse_layout_free(l);
        return 0;
}
