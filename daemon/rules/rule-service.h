/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The rules part of the Manager: runs the rules on the main loop
 * (proto/API.md, "Rules").
 *
 * - It follows the inventory. When a board becomes usable on its port (a
 *   DFU device once its layout is read, Klipper or Katapult once its tty is
 *   there), each new appearance is looked at once: unless a job is already
 *   busy with that port (the board re-enumerating during its own flash),
 *   the oldest enabled rule that matches decides. If flashd remembers that
 *   the board holds the rule's image already, the rule skips it (logged,
 *   counted, notify_rule_skipped); else it submits a job through the job
 *   queue's own submission path, with the rule's id as the job source.
 * - It follows every job (job_service observer). A job that ends done
 *   records the image on that board identity (manual jobs too); one that
 *   failed after erasing forgets it. A rule's failed job is retried, with a
 *   doubling delay, up to the rule's max_retries (not when it was refused
 *   by a safety check: that would fail the same way again).
 * - Rules and the board records live in <state dir>/rules.json; a rule's
 *   image is pinned in the job image store for as long as the rule exists.
 */

#include <jansson.h>
#include <stdbool.h>

#include "jobs/job.h"
#include "rules/rule-store.h"

typedef struct Manager Manager;
typedef struct RuleService RuleService;

int rule_service_new(RuleService **ret, Manager *m);
RuleService *rule_service_free(RuleService *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(RuleService *, rule_service_free);

/* Load rules.json, pin the rules' images, follow the inventory and the
 * jobs, and look at the boards already present. Needs the job service
 * started. */
int rule_service_start(RuleService *s);

RuleSet *rule_service_get_set(RuleService *s);

/* The API object of a rule, with "pending" (boards it is flashing or
 * about to retry). */
json_t *rule_service_rule_json(RuleService *s, const Rule *r);

/* Add a rule (takes ownership on success): pin its image, persist,
 * announce, and try it on the boards already present. */
int rule_service_add(RuleService *s, Rule *r);
/* -ENOENT when there is no such rule. Running jobs of the rule go on;
 * retries it was waiting for are dropped. */
int rule_service_remove(RuleService *s, const char *id);
int rule_service_set_enabled(RuleService *s, Rule *r, bool enabled);
