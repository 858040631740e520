/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The worker thread <-> main loop channel: messages in order, progress
 * merged, a wait answered with a device or cancelled, RESULT last. */
#include <errno.h>
#include <stdlib.h>
#include <systemd/sd-event.h>

#include "jobs/job-worker.h"
#include "util/macros.h"
#include "tests.h"

typedef struct Seen {
        sd_event *event;
        JobWorker *worker;
        bool cancel_on_wait;
        unsigned n_progress, n_state, n_log, n_wait;
        uint64_t last_done;
        JobState last_state;
        unsigned wait_modes;
        char *wait_exclude;
        bool result;
        JobError error;
        bool cancelled;
        char *text;
        bool after_result; /* a message after RESULT: a bug */
} Seen;

/* The flow under test: what a real flow does, minus the device. */
static void flow(JobWorker *w, void *userdata)
{
        JobDevice *d = NULL;
        int r;

        job_worker_send_state(w, JOB_STATE_REBOOTING);
        job_worker_log(w, "hello %d", 1);
        job_worker_send_phase(w, JOB_PHASE_WRITE);
        for (unsigned i = 1; i <= 1000; i++)
                job_worker_send_progress(w, i, 1000);
        r = job_worker_wait_device(w, 1u << DEVICE_MODE_DFU, "/dev/bus/usb/001/002", 0, 10 * 1000000ull, &d);
        if (r == -ECANCELED) {
                job_worker_send_result(w, JOB_ERROR_NONE, true, "cancelled while waiting");
                return;
        }
        if (r < 0 || !d || !d->port || strcmp(d->port, "1-1.3") != 0) {
                job_worker_send_result(w, JOB_ERROR_INTERNAL, false, "bad reply %d", r);
                job_device_free(d);
                return;
        }
        job_device_free(d);
        job_worker_send_result(w, JOB_ERROR_NONE, false, "flashed %s", "1-1.3");
}

static void on_message(JobWorker *w, const JobMessage *m, void *userdata)
{
        Seen *s = userdata;

        if (s->result)
                s->after_result = true;
        switch (m->type) {
        case JOB_MESSAGE_STATE:
                s->n_state++;
                s->last_state = m->state;
                break;
        case JOB_MESSAGE_PROGRESS:
                s->n_progress++;
                CHECK(m->done >= s->last_done);
                s->last_done = m->done;
                break;
        case JOB_MESSAGE_LOG:
                s->n_log++;
                CHECK_STR(m->text, "hello 1");
                break;
        case JOB_MESSAGE_TOTALS:
                break;
        case JOB_MESSAGE_WAIT:
                s->n_wait++;
                s->wait_modes = m->modes;
                s->wait_exclude = m->text ? strdup(m->text) : NULL;
                if (s->cancel_on_wait) {
                        job_worker_cancel(w);
                } else {
                        JobDevice *d = calloc(1, sizeof(JobDevice));
                        d->mode = DEVICE_MODE_DFU;
                        d->port = strdup("1-1.3");
                        job_worker_reply(w, d, 0);
                }
                break;
        case JOB_MESSAGE_RESULT:
                s->result = true;
                s->error = m->error;
                s->cancelled = m->cancelled;
                s->text = m->text ? strdup(m->text) : NULL;
                /* the owner frees the worker here, as the queue does */
                s->worker = job_worker_free(w);
                sd_event_exit(s->event, 0);
                break;
        case JOB_MESSAGE_PHASE:
                /* the progress that followed the phase at once may come with it */
                if (m->has_progress) {
                        s->n_progress++;
                        CHECK_INT(m->total, 1000);
                        CHECK(m->done >= s->last_done);
                        s->last_done = m->done;
                }
                break;
        case JOB_MESSAGE_DEVICE:
        case _JOB_MESSAGE_MAX:
        case _JOB_MESSAGE_INVALID:
                break;
        }
}

static int on_timeout(sd_event_source *src, uint64_t usec, void *userdata)
{
        return sd_event_exit(userdata, -ETIMEDOUT);
}

static void run(bool cancel_on_wait)
{
        Seen s = { .cancel_on_wait = cancel_on_wait };
        sd_event_source *timer = NULL;

        CHECK_INT(sd_event_new(&s.event), 0);
        CHECK_INT(job_worker_new(&s.worker, s.event, flow, NULL, on_message, &s), 0);
        CHECK_INT(sd_event_add_time_relative(s.event, &timer, CLOCK_MONOTONIC, 10 * 1000000ull, 0,
                                             on_timeout, s.event),
                  0);
        CHECK_INT(job_worker_start(s.worker), 0);
        CHECK_INT(sd_event_loop(s.event), 0);

        CHECK(s.result);
        CHECK(!s.after_result);
        CHECK_INT(s.n_state, 1);
        CHECK_INT(s.last_state, JOB_STATE_REBOOTING);
        CHECK_INT(s.n_log, 1);
        CHECK_INT(s.n_wait, 1);
        CHECK_INT(s.wait_modes, 1u << DEVICE_MODE_DFU);
        CHECK_STR(s.wait_exclude, "/dev/bus/usb/001/002");
        /* 1000 progress posts, merged while the loop was busy (into the
         * phase too); the last one is never lost */
        CHECK(s.n_progress >= 1 && s.n_progress <= 1000);
        CHECK_INT(s.last_done, 1000);
        if (cancel_on_wait) {
                CHECK(s.cancelled);
                CHECK_STR(s.text, "cancelled while waiting");
        } else {
                CHECK(!s.cancelled);
                CHECK_INT(s.error, JOB_ERROR_NONE);
                CHECK_STR(s.text, "flashed 1-1.3");
        }
        free(s.text);
        free(s.wait_exclude);
        sd_event_source_unref(timer);
        sd_event_unref(s.event);
}

int main(void)
{
        run(false);
        run(true);
        TESTS_EXIT();
}
