/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * One running job: its flow on a worker thread (job-flow.h), the waits for
 * its board answered from the inventory, its progress announced at most
 * every JOB_RUN_NOTIFY_INTERVAL_USEC. It changes the job (states through
 * job_enter_state(), everything else marked with job_mark_dirty()) and
 * tells its owner, the queue, that it ended through JobRunOnEnd, so that
 * it knows nothing of the queue.
 */

#include <systemd/sd-event.h>

#include "inventory/inventory.h"
#include "jobs/job-flow.h"
#include "jobs/job.h"

typedef struct JobRun JobRun;

/* The flow ended and the job with it (done, failed or cancelled). Called
 * last: the owner frees the run here. */
typedef void (*JobRunOnEnd)(JobRun *run, Job *j, void *userdata);

/* Takes `spec`, also on failure. `inv` and `j` are borrowed. */
int job_run_new(JobRun **ret, sd_event *event, Inventory *inv, Job *j, JobFlowSpec *spec, JobRunOnEnd on_end,
                void *userdata);
/* Stops the worker (cancelled, joined) if it still runs. */
JobRun *job_run_free(JobRun *run);
DEFINE_TRIVIAL_CLEANUP_FUNC(JobRun *, job_run_free);

int job_run_start(JobRun *run);
Job *job_run_get_job(const JobRun *run);

/* A board changed: answers the flow's wait when it is the board it waits for. */
void job_run_on_inventory(JobRun *run, const InventoryEntry *e);
/* The user cancelled: the flow stops at its next block boundary or wait. */
void job_run_cancel(JobRun *run);
/* flashd stops: as job_run_cancel(), and the job is left as it is (recovered at start). */
void job_run_stop(JobRun *run);
