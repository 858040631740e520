/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/job-flow-outcome.h"
#include "util/flash-result.h"
#include "util/macros.h"

int flow_outcome_fail(FlowOutcome *o, JobError e, const char *format, ...)
{
        va_list ap;

        if (o->error != JOB_ERROR_NONE || o->cancelled)
                return -1;
        o->error = e;
        free(o->message);
        va_start(ap, format);
        if (vasprintf(&o->message, format, ap) < 0)
                o->message = NULL;
        va_end(ap);
        return -1;
}

int flow_outcome_cancelled(FlowOutcome *o, const char *what)
{
        if (o->error == JOB_ERROR_NONE && !o->cancelled) {
                o->cancelled = true;
                free(o->message);
                if (asprintf(&o->message, "cancelled %s", what) < 0)
                        o->message = NULL;
        }
        return -1;
}

int flow_outcome_flash_failed(FlowOutcome *o, int r, const char *message, const char *cancelled_what)
{
        if (r == FLASH_ERR_CANCELED)
                return flow_outcome_cancelled(o, cancelled_what);
        if (!message)
                message = r == FLASH_ERR_GONE ? "the board vanished" : strerror(-r);
        return flow_outcome_fail(o, job_error_from_flash(r), "%s", message);
}

void flow_outcome_done(FlowOutcome *o, const char *format, ...)
{
        va_list ap;

        free(o->message);
        va_start(ap, format);
        if (vasprintf(&o->message, format, ap) < 0)
                o->message = NULL;
        va_end(ap);
}

void flow_outcome_send(FlowOutcome *o, JobWorker *w)
{
        if (o->cancelled)
                job_worker_send_result(w, JOB_ERROR_NONE, true, "%s", strna(o->message));
        else
                job_worker_send_result(w, o->error, false, "%s", o->message ? o->message : "done");
        free(o->message);
        o->message = NULL;
}
