/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The state files flashd reads back after a restart (jobs.json entries,
 * rules.json entries) are parsers of untrusted-ish input: a file truncated
 * by a power loss, or edited by hand, must be refused, never crash the
 * daemon. Whatever a loader accepts must survive a round trip.
 */
#include <assert.h>
#include <stdint.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/job.h"
#include "rules/rule.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void job_round_trip(json_t *o)
{
        Job *j = NULL;

        if (job_from_state_json(o, &j) < 0)
                return;
        json_t *again = job_to_state_json(j);
        assert(again);
        Job *k = NULL;
        assert(job_from_state_json(again, &k) >= 0);
        job_free(k);
        json_decref(again);
        job_free(j);
}

static void rule_round_trip(json_t *o)
{
        Rule *r = NULL;

        if (rule_from_state_json(o, &r) < 0)
                return;
        json_t *again = rule_to_state_json(r);
        assert(again);
        Rule *k = NULL;
        assert(rule_from_state_json(again, &k) >= 0);
        rule_free(k);
        json_decref(again);
        rule_free(r);
}

static void match_parse(json_t *o)
{
        RuleMatch m = {};
        char *error = NULL;

        if (rule_match_from_json(o, &m, &error) >= 0)
                rule_match_clear(&m);
        free(error);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        json_t *o = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);

        if (!o)
                return 0;
        job_round_trip(o);
        rule_round_trip(o);
        match_parse(o);
        json_decref(o);
        return 0;
}
