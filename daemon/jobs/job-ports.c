/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The ports jobs hold. A board keeps its identity, its USB port path, while
 * a job reboots it between application and bootloader (it is away from the
 * bus for a moment): device.list and device.info show it as "rebooting"
 * with its job, and a flash of that port queues behind the job instead of
 * finding no board.
 */
#include "jobs/job-queue-internal.h"

const Job *job_queue_port_holder(JobQueue *q, const char *port)
{
        const Job *queued = NULL;

        if (!q || !port)
                return NULL;
        for (size_t i = 0; i < q->n_jobs; i++) {
                const Job *j = q->jobs[i];
                if (job_state_is_final(j->state) || !streq_ptr(j->port, port))
                        continue;
                /* the one busy with the board first, else the next in line */
                if (j->state != JOB_STATE_QUEUED)
                        return j;
                if (!queued)
                        queued = j;
        }
        return queued;
}

void job_queue_foreach_held_port(JobQueue *q, void (*f)(const Job *holder, void *userdata), void *userdata)
{
        if (!q)
                return;
        for (size_t i = 0; i < q->n_jobs; i++) {
                const Job *j = q->jobs[i];
                if (job_state_is_final(j->state) || !j->port)
                        continue;
                /* one call per port: for its holder */
                if (job_queue_port_holder(q, j->port) == j)
                        f(j, userdata);
        }
}

json_t *job_port_json(const Job *j)
{
        return json_pack("{s:I, s:s, s:s}", "id", (json_int_t)j->id, "state", job_state_to_string(j->state),
                         "phase", job_phase_to_string(j->phase));
}

json_t *job_absent_device_json(const Job *j)
{
        json_t *o = json_pack("{s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:[], s:o, s:o, s:o, s:b, s:o}", "id",
                              j->port, "port", j->port, "mode", "rebooting", "mcu",
                              j->mcu ? json_string(j->mcu) : json_null(), "board",
                              j->board ? json_string(j->board) : json_null(), "board_variant",
                              j->variant ? json_string(j->variant) : json_null(), "usb_id", json_null(),
                              "board_candidates", "path", json_null(), "tty", json_null(), "usb_devnode",
                              json_null(), "present", false, "job", job_port_json(j));
        return o;
}
