/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The objects that jobs, rules and devices become in the API and the state
 * files, built from strings that came from the world (process names, USB
 * descriptors, udev properties, file names) as arbitrary bytes: every
 * builder must return an object, and it must serialize. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "inventory/inventory.h"
#include "jobs/job.h"
#include "rules/rule.h"
#include "util/utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define N_STRINGS 12

static void check_serializes(json_t *o)
{
        assert(o);
        char *text = json_dumps(o, JSON_COMPACT);
        assert(text);
        free(text);
        json_decref(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        /* Strings separated by '\n'; missing ones are empty. */
        char *buf = malloc(size + 1), *s[N_STRINGS];
        size_t n = 0;

        if (!buf)
                return 0;
        memcpy(buf, data, size);
        buf[size] = '\0';
        for (char *p = buf; n < N_STRINGS;) {
                s[n++] = p;
                char *nl = strchr(p, '\n');
                if (!nl)
                        break;
                *nl = '\0';
                p = nl + 1;
        }
        while (n < N_STRINGS)
                s[n++] = (char *)"";

        /* The sanitizer itself: valid output, valid input unchanged. */
        char *v = utf8_make_valid(s[0]);
        assert(v && utf8_is_valid(v, strlen(v)));
        if (utf8_is_valid(s[0], strlen(s[0])))
                assert(strcmp(v, s[0]) == 0);
        free(v);
        char small[16];
        strncpy(small, s[1], sizeof(small) - 1);
        small[sizeof(small) - 1] = '\0';
        utf8_make_valid_in_place(small, sizeof(small));
        assert(utf8_is_valid(small, strlen(small)));

        Job *j = NULL;
        if (job_new(&j, 1) >= 0) {
                job_set_string(&j->target, s[0]);
                job_set_string(&j->port, s[1]);
                job_set_string(&j->board, s[2]);
                job_set_string(&j->device, s[3]);
                job_set_string(&j->message, s[4]);
                job_set_string(&j->requested_by.name, s[5]);
                job_set_string(&j->source, s[6]);
                job_fail(j, JOB_ERROR_INTERNAL, "%s", s[7]);
                job_log(j, "%s", s[8]);
                check_serializes(job_to_json(j, true));
                check_serializes(job_to_state_json(j));
                job_free(j);
        }

        Rule *r = NULL;
        if (rule_new(&r, "rule-1") >= 0) {
                r->name = strdup(s[0]);
                r->created_by = strdup(s[5]);
                r->action.image_name = strdup(s[9]);
                r->disabled_reason = strdup(s[10]);
                rule_event_set(&r->last_error, 1.0, s[1], 2, s[11]);
                rule_event_set(&r->last_fired, 1.0, s[3], 0, s[4]);
                check_serializes(rule_to_json(r));
                rule_free(r);
        }

        InventoryAlt alt = { .name = s[6], .diagnostic = s[7] };
        char *diagnostics[] = { s[8], NULL };
        InventoryEntry e = {
                .port = (char *)"1-1.3",
                .manufacturer = s[0],
                .product = s[1],
                .serial = s[2],
                .tty = s[3],
                .by_id = s[4],
                .mcu = s[5],
                .last_mcu = s[9],
                .usb_devnode = s[10],
                .alts = &alt,
                .n_alts = 1,
                .diagnostics = diagnostics,
                .n_diagnostics = 1,
        };
        check_serializes(inventory_entry_to_json(&e));

        free(buf);
        return 0;
}
