/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdlib.h>
#include <string.h>

#include "codec/dfuse-layout.h"
#include "jobs/job-check.h"
#include "jobs/job-flow-katapult.h"

int job_flow_katapult_flash(JobWorker *w, KatapultSession *s, const JobFlowSpec *spec, const JobPayload *p,
                            char **ret_message)
{
        FlashCallbacks cb = job_flow_callbacks(w);
        KatapultFlashOptions opts = {
                .image_address = p->address,
                .image_mcu = p->mcu,
                .force_address = spec->force & (1u << IMAGE_CHECK_VECTOR_TABLE),
                .force_mcu = spec->force & (1u << IMAGE_CHECK_MCU),
                .no_verify = !spec->verify,
        };
        int r;

        /* The board's erase units let the session keep the vector table
         * out of the flash until the rest is in (katapult-session.c). */
        if (spec->has_board)
                opts.layout = spec->board.layout;
        r = katapult_session_flash(s, p->image, &opts, &cb, ret_message);
        if (!*ret_message && katapult_session_get_error(s))
                *ret_message = strdup(katapult_session_get_error(s));
        return r;
}

void job_flow_katapult_report(JobWorker *w, const KatapultSession *s, int r, bool verify)
{
        const KatapultFlashStats *st = katapult_session_get_stats(s);

        if (st && st->resends > 0)
                job_worker_log(w, "%u Katapult frames were resent (%u NACK, %u BUSY, %u timeouts)",
                               st->resends, st->nacks, st->busies, st->timeouts);
        if (r >= 0)
                job_worker_log(w, "Katapult: %u pages written%s", st ? st->pages_written : 0,
                               verify ? " and verified" : "");
}
