/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>

#include "jobs/job-board.h"
#include "jobs/job-flow-can.h"
#include "jobs/job-device.h"
#include "jobs/job-flow.h"
#include "jobs/job-queue-internal.h"
#include "jobs/job-run.h"
#include "util/json-file.h"
#include "util/log.h"

static JobRun *job_queue_find_run(JobQueue *q, const Job *j)
{
        for (size_t i = 0; i < q->n_runs; i++)
                if (job_run_get_job(q->runs[i]) == j)
                        return q->runs[i];
        return NULL;
}

static JobRun *job_queue_find_run_port(JobQueue *q, const char *port)
{
        for (size_t i = 0; i < q->n_runs; i++)
                if (port && streq_ptr(job_run_get_job(q->runs[i])->port, port))
                        return q->runs[i];
        return NULL;
}

static void job_queue_remove_run(JobQueue *q, JobRun *run)
{
        for (size_t i = 0; i < q->n_runs; i++)
                if (q->runs[i] == run) {
                        memmove(q->runs + i, q->runs + i + 1, (q->n_runs - i - 1) * sizeof(JobRun *));
                        q->n_runs--;
                        break;
                }
        job_run_free(run);
        /* The jobs' worker threads each had a malloc arena of their own, and
         * a flash holds images and read-back buffers of a few hundred KiB:
         * give those pages back once nothing runs (after eight parallel jobs,
         * idle RSS 10-11 MiB -> 7 MiB). */
        if (q->n_runs == 0)
                (void)malloc_trim(0);
}

/* ---- persistence ---- */

int job_queue_save(JobQueue *q)
{
        json_t *root, *arr;
        int r;

        arr = json_array();
        for (size_t i = 0; arr && i < q->n_jobs; i++)
                if (json_array_append_new(arr, job_to_state_json(q->jobs[i])) < 0) {
                        /* never write a file that lacks a job */
                        json_decref(arr);
                        return log_error_errno(-ENOMEM, "failed to save %s: job %" PRIu64 " as JSON",
                                               q->state_file, q->jobs[i]->id);
                }
        root = json_pack("{s:i, s:I, s:o}", "version", 1, "next_id", (json_int_t)q->next_id, "jobs", arr);
        if (!root)
                return log_oom();
        r = json_file_write_atomic(q->state_file, root, 0600);
        json_decref(root);
        if (r < 0)
                return log_error_errno(r, "failed to save %s: %m", q->state_file);
        q->n_saves++;
        return 0;
}

static void job_queue_on_dirty(Job *j, JobDirty what, void *userdata)
{
        JobQueue *q = userdata;

        if (what & JOB_DIRTY_SAVE)
                q->save_pending = true;
        if ((what & JOB_DIRTY_NOTIFY) && !j->in_dirty_list) {
                /* appended: notifications go out in the order of the changes */
                LIST_APPEND(dirty, q->dirty, j);
                j->in_dirty_list = true;
        }
        if (q->flush_source)
                (void)sd_event_source_set_enabled(q->flush_source, SD_EVENT_ONESHOT);
}

int job_queue_append(JobQueue *q, Job *j)
{
        Job **p = realloc(q->jobs, (q->n_jobs + 1) * sizeof(Job *));

        if (!p)
                return -ENOMEM;
        q->jobs = p;
        q->jobs[q->n_jobs++] = j;
        j->on_dirty = job_queue_on_dirty;
        j->on_dirty_userdata = q;
        return 0;
}

/* A job out of the queue: freed now, or once its notification went out. */
static void job_queue_release(Job *j)
{
        j->on_dirty = NULL;
        if (j->in_dirty_list || j->notifying)
                j->pruned = true;
        else
                job_free(j);
}

/* Drop the oldest finished jobs beyond history_max. Their images stay in
 * the store when another job still names them. */
static void job_queue_prune(JobQueue *q)
{
        size_t finished = 0;

        for (size_t i = 0; i < q->n_jobs; i++)
                finished += job_state_is_final(q->jobs[i]->state);
        for (size_t i = 0; i < q->n_jobs && finished > q->config.history_max;) {
                Job *j = q->jobs[i];
                bool used = false;

                if (!job_state_is_final(j->state)) {
                        i++;
                        continue;
                }
                for (size_t k = 0; k < q->n_jobs; k++)
                        if (k != i && streq(q->jobs[k]->image.sha256, j->image.sha256))
                                used = true;
                if (!used && j->image.sha256[0])
                        (void)image_store_remove(q->store, j->image.sha256);
                memmove(q->jobs + i, q->jobs + i + 1, (q->n_jobs - i - 1) * sizeof(Job *));
                q->n_jobs--;
                finished--;
                q->save_pending = true;
                job_queue_release(j);
        }
}

static int job_queue_load(JobQueue *q)
{
        _cleanup_free_ char *error = NULL;
        json_t *root = NULL, *arr, *o;
        size_t i;
        int r;

        r = json_file_read(q->state_file, &root, &error);
        if (r == -ENOENT)
                return 0;
        if (r < 0) {
                /* Keep the daemon up: a broken file costs the history, not the
                 * service; it is kept aside for a person to look at. */
                _cleanup_free_ char *aside = NULL;
                if (asprintf(&aside, "%s.broken", q->state_file) >= 0)
                        (void)rename(q->state_file, aside);
                log_warning_errno(r, "ignoring unreadable %s (kept as %s): %s", q->state_file, strna(aside),
                                  error ? error : strerror(-r));
                return 0;
        }
        q->next_id = (uint64_t)json_integer_value(json_object_get(root, "next_id"));
        arr = json_object_get(root, "jobs");
        json_array_foreach (arr, i, o) {
                Job *j;
                if (job_from_state_json(o, &j) < 0) {
                        log_warning("skipping a malformed job in %s", q->state_file);
                        continue;
                }
                if (job_queue_append(q, j) < 0) {
                        j->on_dirty = NULL;
                        job_free(j);
                        json_decref(root);
                        return log_oom();
                }
                if (j->id >= q->next_id)
                        q->next_id = j->id + 1;
        }
        json_decref(root);
        if (q->next_id == 0)
                q->next_id = 1;
        return 0;
}

/* A restart during a job: nothing of it runs any more. */
static void job_queue_recover(JobQueue *q)
{
        for (size_t i = 0; i < q->n_jobs; i++) {
                Job *j = q->jobs[i];

                switch (j->state) {
                case JOB_STATE_QUEUED:
                        break;
                case JOB_STATE_REBOOTING:
                case JOB_STATE_WAITING_FOR_DEVICE:
                        if (j->was_flashing)
                                goto interrupted;
                        /* nothing was erased yet: start over */
                        job_log(j, "flashd restarted before flashing began; starting over");
                        job_enter_state(j, JOB_STATE_QUEUED);
                        break;
                case JOB_STATE_WAITING_FOR_APP:
                        /* the flash completed: only the wait for the application is left */
                        job_log(j, "flashd restarted while waiting for the board to come back");
                        break;
                case JOB_STATE_FLASHING:
                case JOB_STATE_INTERRUPTED:
                interrupted:
                        if (q->config.retry_interrupted) {
                                job_enter_state(j, JOB_STATE_INTERRUPTED);
                                if (j->interrupted_at == 0) /* a state file from before expiry existed */
                                        j->interrupted_at = now_usec(CLOCK_REALTIME);
                                (void)job_set_string(
                                        &j->message,
                                        "interrupted by a restart of flashd; retried from the start "
                                        "when the board shows up in its bootloader");
                        } else
                                job_fail(j, JOB_ERROR_INTERRUPTED,
                                         "flashd stopped while this job was flashing (retry_interrupted = "
                                         "no); "
                                         "the board is probably left in its bootloader");
                        break;
                case JOB_STATE_DONE:
                case JOB_STATE_FAILED:
                case JOB_STATE_CANCELLED:
                case JOB_STATE_SUPERSEDED:
                case _JOB_STATE_MAX:
                case _JOB_STATE_INVALID:
                        break;
                }
        }
}

/* ---- interrupted jobs that must not run any more ---- */

static bool job_expired(const JobQueue *q, const Job *j, usec_t now)
{
        return j->state == JOB_STATE_INTERRUPTED && q->config.interrupted_expire_usec > 0 &&
               j->interrupted_at > 0 && now >= j->interrupted_at + q->config.interrupted_expire_usec;
}

/* An interrupted job left for long is failed: by then the board has most
 * likely been flashed some other way, and a retry would write an old image
 * over whatever it runs now. */
static void job_queue_expire(JobQueue *q)
{
        usec_t now = now_usec(CLOCK_REALTIME);

        for (size_t i = 0; i < q->n_jobs; i++) {
                Job *j = q->jobs[i];

                if (!job_expired(q, j, now))
                        continue;
                job_fail(j, JOB_ERROR_INTERRUPTED,
                         "interrupted %.0f s ago and not retried within interrupted_expire_sec (%.0f s): "
                         "expired, so that an old image is never written over a newer one; flash the "
                         "board again if it still needs this image",
                         usec_to_sec(now - j->interrupted_at),
                         usec_to_sec(q->config.interrupted_expire_usec));
        }
}

static int job_queue_on_expiry(sd_event_source *s, uint64_t usec, void *userdata)
{
        JobQueue *q = userdata;

        q->expire_timer = sd_event_source_disable_unref(q->expire_timer);
        job_queue_expire(q);
        return 0;
}

static void job_queue_arm_expiry(JobQueue *q)
{
        usec_t first = 0;
        int r;

        q->expire_timer = sd_event_source_disable_unref(q->expire_timer);
        if (!q->started || q->config.interrupted_expire_usec == 0)
                return;
        for (size_t i = 0; i < q->n_jobs; i++) {
                const Job *j = q->jobs[i];
                usec_t at = j->interrupted_at + q->config.interrupted_expire_usec;

                if (j->state == JOB_STATE_INTERRUPTED && j->interrupted_at > 0 && (first == 0 || at < first))
                        first = at;
        }
        if (first == 0)
                return;
        /* wall clock: the expiry counts across restarts of flashd */
        r = sd_event_add_time(q->event, &q->expire_timer, CLOCK_REALTIME, first, 0, job_queue_on_expiry, q);
        if (r < 0)
                log_warning_errno(r, "cannot arm the expiry timer of interrupted jobs: %m");
}

void job_queue_supersede_older(JobQueue *q, Job *newer)
{
        for (size_t i = 0; i < q->n_jobs; i++) {
                Job *j = q->jobs[i];
                char text[256];

                if (j == newer || j->id > newer->id || j->state != JOB_STATE_INTERRUPTED ||
                    !streq_ptr(j->port, newer->port) || job_queue_find_run(q, j))
                        continue;
                j->superseded_by = newer->id;
                snprintf(text, sizeof(text),
                         "superseded by job %" PRIu64 ", accepted later for the same board; not retried",
                         newer->id);
                (void)job_set_string(&j->message, text);
                job_log(j, "%s", text);
                job_enter_state(j, JOB_STATE_SUPERSEDED);
        }
}

static int job_queue_make_spec(JobQueue *q, Job *j, const InventoryEntry *e, JobFlowSpec **ret)
{
        _cleanup_(job_flow_spec_freep) JobFlowSpec *s = calloc(1, sizeof(JobFlowSpec));
        const Board *b;
        const BoardVariant *v;
        int r;

        if (!s)
                return -ENOMEM;
        s->job_id = j->id;
        s->store = q->store;
        memcpy(s->sha256, j->image.sha256, sizeof(s->sha256));
        if (j->image.format && !(s->format = strdup(j->image.format)))
                return -ENOMEM;
        s->address = j->image.address;
        s->has_address = j->image.has_address;
        s->verify = j->verify;
        s->mass_erase = j->mass_erase;
        s->force = j->force;
        s->reboot_wait_usec = q->config.reboot_wait_usec;
        s->device_timeout_usec = q->config.device_timeout_usec;
        s->app_timeout_usec = q->config.app_timeout_usec;
        s->stop_units = q->config.stop_units;
        s->uart_baud = q->config.uart_baud;
        s->resume_wait_app = j->state == JOB_STATE_WAITING_FOR_APP;
        {
                char iface[16];
                if (job_can_target_parse(j->port, iface, &s->can_uuid) >= 0 &&
                    !(s->can_iface = strdup(iface)))
                        return -ENOMEM;
        }
        if (e && e->present && !s->can_iface) {
                r = job_device_from_entry(e, &s->device);
                if (r < 0)
                        return r;
        }
        job_board_of(q->boards, j, e, &b, &v);
        if (b) {
                r = job_flow_board_fill(&s->board, b, v);
                if (r < 0)
                        return r;
                s->has_board = true;
        }
        *ret = TAKE_PTR(s);
        return 0;
}

/* The run ended: the board is free for the next job at the end of the turn. */
static void job_queue_on_run_end(JobRun *run, Job *j, void *userdata)
{
        job_queue_remove_run(userdata, run);
}

static int job_queue_start_job(JobQueue *q, Job *j)
{
        const InventoryEntry *e = inventory_get(q->inventory, j->port);
        JobFlowSpec *spec = NULL;
        JobRun *run = NULL, **runs;
        int r;

        runs = realloc(q->runs, (q->n_runs + 1) * sizeof(JobRun *));
        if (!runs)
                return log_oom();
        q->runs = runs;
        r = job_queue_make_spec(q, j, e, &spec);
        if (r >= 0)
                r = job_run_new(&run, q->event, q->inventory, j, TAKE_PTR(spec), job_queue_on_run_end, q);
        if (r < 0) {
                job_flow_spec_free(spec);
                job_fail(j, JOB_ERROR_INTERNAL, "could not start the job: %s", strerror(-r));
                return r;
        }
        q->runs[q->n_runs++] = run;

        j->attempts++;
        if (j->started == 0)
                j->started = now_usec(CLOCK_REALTIME);
        job_log(j, "starting (attempt %u) on port %s", j->attempts, strna(j->port));
        job_mark_dirty(j, JOB_DIRTY_ALL);

        r = job_run_start(run);
        if (r < 0) {
                job_queue_remove_run(q, run);
                job_fail(j, JOB_ERROR_INTERNAL, "could not start a worker thread: %s", strerror(-r));
                return r;
        }
        return 0;
}

/* Start every queued job whose board is free, oldest first. */
static void job_queue_schedule(JobQueue *q)
{
        if (!q->started || q->stopping)
                return;
        for (size_t i = 0; i < q->n_jobs; i++) {
                Job *j = q->jobs[i];
                bool busy = false;

                if (j->state != JOB_STATE_QUEUED &&
                    !(j->state == JOB_STATE_WAITING_FOR_APP && !job_queue_find_run(q, j)))
                        continue;
                if (job_queue_find_run_port(q, j->port))
                        continue;
                /* an older unfinished job on the same board goes first */
                for (size_t k = 0; k < i; k++)
                        if (!job_state_is_final(q->jobs[k]->state) && streq_ptr(q->jobs[k]->port, j->port) &&
                            q->jobs[k]->state != JOB_STATE_INTERRUPTED)
                                busy = true;
                if (busy)
                        continue;
                (void)job_queue_start_job(q, j);
        }
}

static void job_queue_on_inventory(Inventory *inv, InventoryEvent event, const InventoryEntry *e,
                                   void *userdata)
{
        JobQueue *q = userdata;

        if (event == INVENTORY_EVENT_REMOVED || !e->present)
                return;
        for (size_t i = 0; i < q->n_runs; i++)
                job_run_on_inventory(q->runs[i], e);

        /* An interrupted job is retried once its board sits in its bootloader
         * (unless it expired meanwhile). */
        bool in_bootloader = JOB_DEVICE_BOOTLOADER_MODES & (1u << e->mode);
        if (in_bootloader || e->mode == DEVICE_MODE_APP) {
                job_queue_expire(q);
                for (size_t i = 0; i < q->n_jobs; i++) {
                        Job *j = q->jobs[i];
                        if (j->state != JOB_STATE_INTERRUPTED || !streq_ptr(j->port, e->port))
                                continue;
                        if (in_bootloader) {
                                job_log(j, "board is in its bootloader again: retrying from the start");
                                job_enter_state(j, JOB_STATE_QUEUED);
                        } else if (j->phase == JOB_PHASE_LEAVE) {
                                /* Interrupted while asking the bootloader to start the
                                 * application: the image was complete (and verified,
                                 * unless the job said not to), and the board now runs it. */
                                (void)job_set_string(&j->message,
                                                     "the image was written before flashd restarted; "
                                                     "the board runs its application again");
                                job_log(j, "%s", j->message);
                                job_enter_state(j, JOB_STATE_DONE);
                        }
                }
        }
}

/* ---- the end of a loop turn ---- */

static int job_queue_save_pending(JobQueue *q)
{
        if (!q->save_pending)
                return 0;
        q->save_pending = false;
        job_queue_arm_expiry(q);
        return job_queue_save(q);
}

int job_queue_flush(JobQueue *q)
{
        job_queue_schedule(q);
        job_queue_prune(q);
        return job_queue_save_pending(q);
}

/* Each changed job once, in the order of their first change, after the
 * save: nobody hears of a state that a restart would not find. */
static void job_queue_send_notifications(JobQueue *q)
{
        Job *j;

        while ((j = LIST_POP(dirty, q->dirty))) {
                _cleanup_(json_decrefp) json_t *earlier = NULL;

                j->in_dirty_list = false;
                if (!j->unnotified && !j->unsent)
                        goto next;
                /* what an earlier callback changed is saved first */
                (void)job_queue_save_pending(q);
                earlier = job_take_notification(j);
                /* the callbacks may submit, cancel, change other jobs (and
                 * so prune this one): it is freed only after them */
                j->notifying = true;
                if (q->on_update)
                        q->on_update(q, j, earlier, q->on_update_userdata);
                j->notifying = false;
        next:
                if (j->pruned && !j->in_dirty_list)
                        job_free(j);
        }
}

static int job_queue_on_flush(sd_event_source *s, void *userdata)
{
        JobQueue *q = userdata;

        (void)job_queue_flush(q);
        /* jobs a callback changes are announced in the same pass; what
         * else they need (starting, pruning) waits for the next turn */
        job_queue_send_notifications(q);
        return 0;
}

static int job_queue_on_exit(sd_event_source *s, void *userdata)
{
        JobQueue *q = userdata;

        /* the file says exactly what the jobs were, also where a crash
         * would have left a state that recovers the same way; nothing new
         * starts while flashd stops */
        q->save_pending = true;
        q->stopping = true;
        return job_queue_on_flush(s, q);
}

/* ---- public ---- */

int job_queue_new(JobQueue **ret, sd_event *event, Inventory *inv, const BoardDb *boards,
                  const JobQueueConfig *config)
{
        _cleanup_(job_queue_freep) JobQueue *q = calloc(1, sizeof(JobQueue));
        if (!q)
                return -ENOMEM;
        q->event = sd_event_ref(event);
        q->inventory = inv;
        q->boards = boards;
        q->config = *config;
        q->next_id = 1;
        q->state_dir = strdup(config->state_dir);
        if (!q->state_dir || asprintf(&q->state_file, "%s/jobs.json", config->state_dir) < 0)
                return -ENOMEM;
        q->config.state_dir = q->state_dir;
        *ret = TAKE_PTR(q);
        return 0;
}

JobQueue *job_queue_free(JobQueue *q)
{
        if (!q)
                return NULL;
        if (q->started)
                inventory_remove_listener(q->inventory, job_queue_on_inventory, q);
        /* without a loop turn left (no event loop ran its exit): what
         * changed last is kept; the runs below stay in their states */
        if (q->save_pending)
                (void)job_queue_save(q);
        q->expire_timer = sd_event_source_disable_unref(q->expire_timer);
        q->flush_source = sd_event_source_disable_unref(q->flush_source);
        q->exit_source = sd_event_source_disable_unref(q->exit_source);
        while (q->dirty) {
                Job *j = LIST_POP(dirty, q->dirty);
                j->in_dirty_list = false;
                if (j->pruned)
                        job_free(j);
        }
        /* Running workers: cancel and let them finish (sessions poll the flag
         * between transfers; waits are answered here). The jobs stay
         * persisted in their running state and are recovered at start. */
        for (size_t i = 0; i < q->n_runs; i++)
                job_run_stop(q->runs[i]);
        for (size_t i = 0; i < q->n_runs; i++)
                job_run_free(q->runs[i]);
        free(q->runs);
        for (size_t i = 0; i < q->n_jobs; i++)
                job_free(q->jobs[i]);
        free(q->jobs);
        image_store_free(q->store);
        free(q->state_dir);
        free(q->state_file);
        sd_event_unref(q->event);
        free(q);
        return NULL;
}

void job_queue_set_on_update(JobQueue *q, JobQueueOnUpdate cb, void *userdata)
{
        q->on_update = cb;
        q->on_update_userdata = userdata;
}

ImageStore *job_queue_get_image_store(JobQueue *q)
{
        return q->store;
}

int job_queue_start(JobQueue *q)
{
        _cleanup_free_ char *images = NULL;
        int r;

        if (mkdir(q->state_dir, 0700) < 0 && errno != EEXIST)
                return log_error_errno(-errno, "failed to create state directory %s: %m", q->state_dir);
        if (asprintf(&images, "%s/images", q->state_dir) < 0)
                return log_oom();
        r = image_store_new(&q->store, images);
        if (r < 0)
                return log_error_errno(r, "failed to open image store %s: %m", images);
        r = job_queue_load(q);
        if (r < 0)
                return r;
        job_queue_recover(q);
        r = sd_event_add_defer(q->event, &q->flush_source, job_queue_on_flush, q);
        if (r < 0)
                return log_error_errno(r, "failed to add the job queue's flush: %m");
        (void)sd_event_source_set_description(q->flush_source, "job-queue-flush");
        if (q->dirty) /* the recovered jobs' new states */
                (void)sd_event_source_set_enabled(q->flush_source, SD_EVENT_ONESHOT);
        /* the changes of the last loop turn before flashd stops */
        r = sd_event_add_exit(q->event, &q->exit_source, job_queue_on_exit, q);
        if (r < 0)
                return log_error_errno(r, "failed to add the job queue's flush at exit: %m");
        r = inventory_add_listener(q->inventory, job_queue_on_inventory, q);
        if (r < 0)
                return log_error_errno(r, "failed to follow the inventory: %m");
        q->started = true;
        job_queue_expire(q);

        /* boards already sitting in their bootloader */
        for (size_t i = 0; i < q->n_jobs; i++) {
                Job *j = q->jobs[i];
                const InventoryEntry *e;
                if (j->state != JOB_STATE_INTERRUPTED)
                        continue;
                e = inventory_get(q->inventory, j->port);
                if (e)
                        job_queue_on_inventory(q->inventory, INVENTORY_EVENT_CHANGED, e, q);
        }
        /* the recovered queue is on disk before anything runs (written
         * even when nothing changed: a file kept aside is replaced) */
        q->save_pending = true;
        return job_queue_flush(q);
}

Job *job_queue_find(JobQueue *q, uint64_t id)
{
        for (size_t i = 0; i < q->n_jobs; i++)
                if (q->jobs[i]->id == id)
                        return q->jobs[i];
        return NULL;
}

int job_queue_cancel(JobQueue *q, uint64_t id)
{
        Job *j = job_queue_find(q, id);
        JobRun *run;

        if (!j)
                return -ENOENT;
        if (job_state_is_final(j->state))
                return -EALREADY;
        run = job_queue_find_run(q, j);
        if (!run) {
                job_log(j, "cancelled before it ran");
                (void)job_set_string(&j->message, "cancelled");
                job_enter_state(j, JOB_STATE_CANCELLED);
                return 0;
        }
        job_run_cancel(run);
        return 0;
}

bool job_queue_port_busy(JobQueue *q, const char *port)
{
        usec_t now = now_usec(CLOCK_REALTIME);

        /* An expired job whose timer has not run yet (a board that shows up
         * the moment it expires) holds nothing either; it is failed by the
         * timer, not here, so that asking changes no job. */
        for (size_t i = 0; i < q->n_jobs; i++)
                if (!job_state_is_final(q->jobs[i]->state) && streq_ptr(q->jobs[i]->port, port) &&
                    !job_expired(q, q->jobs[i], now))
                        return true;
        return false;
}

json_t *job_queue_list_json(JobQueue *q, bool all)
{
        json_t *arr = json_array();

        for (size_t i = 0; arr && i < q->n_jobs; i++)
                if ((all || !job_state_is_final(q->jobs[i]->state)) &&
                    json_array_append_new(arr, job_to_json(q->jobs[i], false)) < 0) {
                        json_decref(arr); /* the caller answers an error, not a shorter list */
                        return NULL;
                }
        return arr;
}
