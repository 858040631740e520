/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdlib.h>

#include "jobs/job-flow-spec.h"

void job_flow_spec_free(JobFlowSpec *s)
{
        if (!s)
                return;
        free(s->format);
        free(s->can_iface);
        job_device_free(s->device);
        job_flow_board_clear(&s->board);
        free(s);
}

/* What the sessions report (FlashCallbacks), to the job. */

static void flow_on_phase(void *userdata, FlashPhase phase)
{
        job_worker_send_phase(userdata, job_phase_from_flash(phase));
}

static void flow_on_progress(void *userdata, uint64_t done, uint64_t total)
{
        job_worker_send_progress(userdata, done, total);
}

static void flow_on_note(void *userdata, const char *text)
{
        job_worker_log(userdata, "%s", text);
}

FlashCallbacks job_flow_callbacks(JobWorker *w)
{
        return (FlashCallbacks){
                .phase = flow_on_phase,
                .progress = flow_on_progress,
                .note = flow_on_note,
                .cancel = job_worker_cancel_flag(w),
                .userdata = w,
        };
}
