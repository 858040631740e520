/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Katapult as a job runs it, on either transport (a tty in job-flow.c, a
 * CAN node in job-flow-can.c): the options from the job and the report to
 * its log. The session itself is serial/katapult-session.c.
 */

#include <stdbool.h>

#include "jobs/job-flow-spec.h"
#include "serial/katapult-session.h"

typedef struct JobPayload JobPayload;

/* Katapult on either transport: the options from the job (forced checks,
 * verify, the board's layout for the vector table's page) and the flash;
 * the session's result, *ret_message its sentence. */
int job_flow_katapult_flash(JobWorker *w, KatapultSession *s, const JobFlowSpec *spec, const JobPayload *p,
                            char **ret_message);
/* What the Katapult session did, to the job's log. */
void job_flow_katapult_report(JobWorker *w, const KatapultSession *s, int r, bool verify);
