/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "jobs/job-run.h"
#include "util/log.h"

/* notify_job_update at most this often per job while bytes move */
#define JOB_NOTIFY_INTERVAL_USEC (250ull * 1000ull)
/* how long a new phase may wait for its first progress (and total) */
#define JOB_PHASE_TOTAL_WAIT_USEC (100ull * 1000ull)

struct JobRun {
        sd_event *event;
        Inventory *inventory;
        Job *job;
        JobWorker *worker;
        JobFlowSpec *spec;
        JobRunOnEnd on_end;
        void *userdata;

        bool waiting;
        unsigned wait_modes;
        char *wait_exclude;
        sd_event_source *hint_timer, *timeout_timer;

        uint64_t phase_start_usec, phase_start_bytes;
        uint64_t last_notify_usec;
        sd_event_source *notify_timer;
        bool phase_unsent; /* a new phase waits for its total before it is announced */
};

static void job_run_flush_notify(JobRun *run)
{
        run->phase_unsent = false;
        run->notify_timer = sd_event_source_disable_unref(run->notify_timer);
        run->last_notify_usec = now_usec(CLOCK_MONOTONIC);
        job_mark_dirty(run->job, JOB_DIRTY_NOTIFY);
}

static int job_run_on_notify_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
        job_run_flush_notify(userdata);
        return 0;
}

/* Progress: at most one notification per JOB_NOTIFY_INTERVAL_USEC; the last
 * value is never lost (a timer sends it). */
static void job_run_notify_coalesced(JobRun *run)
{
        uint64_t now = now_usec(CLOCK_MONOTONIC);

        if (now - run->last_notify_usec >= JOB_NOTIFY_INTERVAL_USEC) {
                job_run_flush_notify(run);
                return;
        }
        if (!run->notify_timer)
                (void)sd_event_add_time_relative(run->event, &run->notify_timer, CLOCK_MONOTONIC,
                                                 JOB_NOTIFY_INTERVAL_USEC - (now - run->last_notify_usec), 0,
                                                 job_run_on_notify_timer, run);
}

/* The job's totals, for what has no bytes of its own (leave, the end). */
static void job_show_totals(Job *j)
{
        if (j->image.payload_size > 0)
                j->bytes_total = j->image.payload_size;
        j->bytes_done = j->bytes_total;
}

static void job_run_clear_wait(JobRun *run)
{
        run->waiting = false;
        free(run->wait_exclude);
        run->wait_exclude = NULL;
        run->hint_timer = sd_event_source_disable_unref(run->hint_timer);
        run->timeout_timer = sd_event_source_disable_unref(run->timeout_timer);
}

/* ---- waits for the board ---- */

static bool job_run_try_answer(JobRun *run, const InventoryEntry *e)
{
        JobDevice *d = NULL;

        if (!run->waiting || !e || !e->present || e->mode < 0 || e->mode >= _DEVICE_MODE_MAX)
                return false;
        if (!(run->wait_modes & (1u << e->mode)))
                return false;
        if (run->wait_exclude && streq_ptr(run->wait_exclude, e->usb_devnode))
                return false;
        /* A DFU device is usable once the inventory has read its layout; an
         * RP2040 boot ROM once the inventory's PICOBOOT read of its version
         * is over (the two would fight over the interface). */
        if ((e->mode == DEVICE_MODE_DFU || e->mode == DEVICE_MODE_BOOTSEL) && (!e->probed || e->probing))
                return false;
        /* Klipper and Katapult are talked to through their tty, which udev
         * announces a moment after the USB device (a USB-to-CAN bridge's
         * Klipper has none: it is reached over CAN) */
        if ((e->mode == DEVICE_MODE_APP || e->mode == DEVICE_MODE_KATAPULT) && !e->tty &&
            !inventory_entry_bridge_uuid(e, NULL))
                return false;
        if (job_device_from_entry(e, &d) < 0)
                return false;
        (void)job_set_string(&run->job->mode, device_mode_to_string(e->mode));
        job_log(run->job, "board on %s is here in %s mode (%s)", e->port, device_mode_to_string(e->mode),
                strna(e->tty ? e->tty : e->usb_devnode));
        job_run_clear_wait(run);
        job_worker_reply(run->worker, d, 0);
        return true;
}

static int job_run_on_hint(sd_event_source *s, uint64_t usec, void *userdata)
{
        JobRun *run = userdata;
        const char *hint = run->spec->has_board && run->spec->board.hint ? run->spec->board.hint
                                                                         : "set BOOT0 and press reset";
        char text[1024];

        run->hint_timer = sd_event_source_disable_unref(run->hint_timer);
        /* (immediately for boards the database says cannot be rebooted by software) */
        snprintf(text, sizeof(text),
                 "the board has not shown up in its bootloader; %s; the job keeps waiting", hint);
        (void)job_set_string(&run->job->message, text);
        (void)job_set_string(&run->job->wait_hint, hint);
        job_log(run->job, "%s", text);
        job_run_flush_notify(run);
        return 0;
}

static int job_run_on_timeout(sd_event_source *s, uint64_t usec, void *userdata)
{
        JobRun *run = userdata;

        job_log(run->job, "gave up waiting for the board");
        job_run_clear_wait(run);
        job_worker_reply(run->worker, NULL, -ETIMEDOUT);
        return 0;
}

static void job_run_start_wait(JobRun *run, const JobMessage *m)
{
        bool for_app = m->modes & (1u << DEVICE_MODE_APP) && !(m->modes & JOB_DEVICE_BOOTLOADER_MODES);
        uint64_t timeout =
                m->timeout_usec ? m->timeout_usec
                                : (for_app ? run->spec->app_timeout_usec : run->spec->device_timeout_usec);

        job_run_clear_wait(run);
        run->waiting = true;
        run->wait_modes = m->modes;
        if (m->text)
                run->wait_exclude = strdup(m->text);

        if (job_run_try_answer(run, inventory_get(run->inventory, run->job->port)))
                return;

        job_enter_state(run->job, for_app || run->job->state == JOB_STATE_WAITING_FOR_APP
                                          ? JOB_STATE_WAITING_FOR_APP
                                          : JOB_STATE_WAITING_FOR_DEVICE);
        run->job->wait_started = now_usec(CLOCK_REALTIME);
        run->job->wait_timeout_usec = timeout;
        (void)job_set_string(&run->job->wait_hint, NULL);
        if (m->hint_usec > 0)
                (void)sd_event_add_time_relative(run->event, &run->hint_timer, CLOCK_MONOTONIC, m->hint_usec,
                                                 0, job_run_on_hint, run);
        (void)sd_event_add_time_relative(run->event, &run->timeout_timer, CLOCK_MONOTONIC, timeout, 0,
                                         job_run_on_timeout, run);
        job_run_flush_notify(run);
}

/* ---- running ---- */

static void job_run_on_message(JobWorker *w, const JobMessage *m, void *userdata)
{
        JobRun *run = userdata;
        Job *j = run->job;
        uint64_t now = now_usec(CLOCK_MONOTONIC);

        switch (m->type) {
        case JOB_MESSAGE_STATE:
                job_enter_state(j, m->state);
                if (m->state != JOB_STATE_WAITING_FOR_DEVICE && m->state != JOB_STATE_WAITING_FOR_APP)
                        (void)job_set_string(&j->message, NULL);
                job_run_flush_notify(run);
                break;
        case JOB_MESSAGE_PHASE:
                job_enter_phase(j, m->phase);
                j->rate = 0;
                run->phase_start_usec = now;
                run->phase_start_bytes = 0;
                job_log(j, "phase %s", job_phase_to_string(m->phase));
                /* Past the leave request the image is complete in flash: a
                 * restart that finds the board back in its application
                 * finishes the job instead of waiting for a bootloader that
                 * will not come. Saved (at the end of this loop turn,
                 * before the notification) like a state change. */
                if (m->phase == JOB_PHASE_LEAVE)
                        job_mark_dirty(j, JOB_DIRTY_SAVE);
                if (m->has_progress) {
                        j->bytes_done = m->done;
                        j->bytes_total = m->total;
                } else if (m->phase == JOB_PHASE_LEAVE)
                        job_show_totals(j); /* no bytes of its own: the written image */
                else {
                        /* The phase's total comes with its first progress,
                         * which the session sends right after the phase; a
                         * phase announced with total 0 would make a frontend's
                         * bar jump, so wait a moment for it. */
                        j->bytes_done = 0;
                        j->bytes_total = 0;
                        run->phase_unsent = true;
                        run->notify_timer = sd_event_source_disable_unref(run->notify_timer);
                        if (sd_event_add_time_relative(run->event, &run->notify_timer, CLOCK_MONOTONIC,
                                                       JOB_PHASE_TOTAL_WAIT_USEC, 0, job_run_on_notify_timer,
                                                       run) >= 0)
                                break;
                }
                job_run_flush_notify(run);
                break;
        case JOB_MESSAGE_PROGRESS:
                j->bytes_done = m->done;
                j->bytes_total = m->total;
                if (now > run->phase_start_usec + 50000 && m->done >= run->phase_start_bytes)
                        j->rate = (double)(m->done - run->phase_start_bytes) * 1e6 /
                                  (double)(now - run->phase_start_usec);
                if (run->phase_unsent)
                        job_run_flush_notify(run);
                else
                        job_run_notify_coalesced(run);
                break;
        case JOB_MESSAGE_LOG:
                if (m->text && !(m->once && job_log_has(j, m->text)))
                        job_log(j, "%s", m->text);
                break;
        case JOB_MESSAGE_TOTALS:
                j->totals = m->totals;
                j->totals.valid = true;
                break;
        case JOB_MESSAGE_DEVICE:
                (void)job_set_string(&j->device, m->text);
                break;
        case JOB_MESSAGE_WAIT:
                job_run_start_wait(run, m);
                break;
        case JOB_MESSAGE_RESULT:
                if (m->cancelled) {
                        (void)job_set_string(&j->message, m->text ? m->text : "cancelled");
                        job_enter_state(j, JOB_STATE_CANCELLED);
                } else if (m->error == JOB_ERROR_NONE) {
                        job_show_totals(j);
                        j->rate = 0;
                        (void)job_set_string(&j->message, m->text);
                        if (m->text)
                                job_log(j, "%s", m->text);
                        job_enter_state(j, JOB_STATE_DONE);
                } else
                        job_fail(j, m->error, "%s", m->text ? m->text : job_error_advice(m->error));
                job_run_flush_notify(run);
                /* frees the run and the worker: its thread has posted its
                 * last message */
                run->on_end(run, j, run->userdata);
                break;
        case _JOB_MESSAGE_MAX:
        case _JOB_MESSAGE_INVALID:
                break;
        }
}

/* ---- the owner's side ---- */

int job_run_new(JobRun **ret, sd_event *event, Inventory *inv, Job *j, JobFlowSpec *spec, JobRunOnEnd on_end,
                void *userdata)
{
        _cleanup_(job_run_freep) JobRun *run = calloc(1, sizeof(JobRun));
        int r;

        if (!run) {
                job_flow_spec_free(spec);
                return -ENOMEM;
        }
        run->event = sd_event_ref(event);
        run->inventory = inv;
        run->job = j;
        run->spec = spec;
        run->on_end = on_end;
        run->userdata = userdata;
        r = job_worker_new(&run->worker, event, job_flow_run, run->spec, job_run_on_message, run);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(run);
        return 0;
}

JobRun *job_run_free(JobRun *run)
{
        if (!run)
                return NULL;
        job_run_clear_wait(run);
        run->notify_timer = sd_event_source_disable_unref(run->notify_timer);
        job_worker_free(run->worker);
        job_flow_spec_free(run->spec);
        sd_event_unref(run->event);
        free(run);
        return NULL;
}

int job_run_start(JobRun *run)
{
        return job_worker_start(run->worker);
}

Job *job_run_get_job(const JobRun *run)
{
        return run->job;
}

void job_run_on_inventory(JobRun *run, const InventoryEntry *e)
{
        if (streq_ptr(run->job->port, e->port))
                (void)job_run_try_answer(run, e);
}

void job_run_stop(JobRun *run)
{
        job_worker_cancel(run->worker);
        if (run->waiting) {
                job_run_clear_wait(run);
                job_worker_reply(run->worker, NULL, -ECANCELED);
        }
}

void job_run_cancel(JobRun *run)
{
        job_log(run->job, "cancel requested");
        (void)job_set_string(&run->job->message, "cancelling");
        job_run_stop(run);
        job_run_flush_notify(run);
}
