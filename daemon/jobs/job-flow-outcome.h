/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>

#include "jobs/job-error.h"
#include "jobs/job-worker.h"

/*
 * How a flow ends, recorded where it is found: the first failure or cancel
 * wins, so a later, consequential error does not hide the cause. Every flow
 * (USB, serial, CAN) keeps one and reports it with flow_outcome_send().
 */
typedef struct FlowOutcome {
        JobError error;
        bool cancelled;
        char *message; /* malloc'd: the failure, the cancel, or what was done */
} FlowOutcome;

/* Record a failure (unless one is recorded); returns -1 for `return flow_outcome_fail(...)`. */
int flow_outcome_fail(FlowOutcome *o, JobError e, const char *format, ...)
        __attribute__((format(printf, 3, 4)));
/* Record a cancel "cancelled WHAT" (unless an outcome is recorded); returns -1. */
int flow_outcome_cancelled(FlowOutcome *o, const char *what);
/* Record a flash session's failure r < 0: FLASH_ERR_CANCELED as
 * "cancelled WHAT", anything else as job_error_from_flash(r) with the
 * session's message (NULL: a sentence from r). Returns -1. */
int flow_outcome_flash_failed(FlowOutcome *o, int r, const char *message, const char *cancelled_what);
/* The message of a success. */
void flow_outcome_done(FlowOutcome *o, const char *format, ...) __attribute__((format(printf, 2, 3)));
/* Send the outcome as the job's result and free it. */
void flow_outcome_send(FlowOutcome *o, JobWorker *w);
