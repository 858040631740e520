/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The thread a running job's flow runs on, and its message channel to the
 * main loop (DESIGN.md: sessions are sequential code on worker threads; the
 * main loop owns all state and never blocks on a device).
 *
 * Worker -> main loop: messages in a mutex-protected list, announced through
 * an eventfd that is an sd-event io source. Consecutive progress messages
 * are merged, so a fast session cannot flood the loop.
 * Main loop -> worker: the cancellation flag (an atomic_bool that sessions
 * poll between transfers) and the answer to a "wait for device" request.
 */

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "jobs/job-device.h"
#include "jobs/job.h"
#include "util/macros.h"

typedef struct JobWorker JobWorker;

typedef enum JobMessageType {
        JOB_MESSAGE_STATE,    /* the flow entered a state (rebooting, flashing) */
        JOB_MESSAGE_PHASE,    /* erase / write / verify / leave */
        JOB_MESSAGE_PROGRESS, /* bytes done / total of the current phase */
        JOB_MESSAGE_LOG,      /* a line for the job's log */
        JOB_MESSAGE_WAIT,     /* wait until the board shows up in one of `modes` */
        JOB_MESSAGE_DEVICE,   /* the flow now talks to this device (for the job object) */
        JOB_MESSAGE_TOTALS,   /* what the flash wrote, for the job's result */
        JOB_MESSAGE_RESULT,   /* the flow ended; always the last message */
        _JOB_MESSAGE_MAX,
        _JOB_MESSAGE_INVALID = -EINVAL,
} JobMessageType;

typedef struct JobMessage {
        JobMessageType type;
        JobState state;
        JobPhase phase;
        uint64_t done, total;
        bool has_progress;     /* PHASE: the phase's first progress came with it (done, total) */
        char *text;            /* log line, result message, device path */
        unsigned modes;        /* WAIT: 1 << DeviceMode */
        uint64_t hint_usec;    /* WAIT: after this long, show the board's hint */
        uint64_t timeout_usec; /* WAIT: give up (0 = the queue's default) */
        JobError error;        /* RESULT: JOB_ERROR_NONE for success */
        bool cancelled;        /* RESULT: ended by cancellation */
        bool once;             /* LOG: only when the job's log does not hold this line yet */
        JobTotals totals;      /* TOTALS */
        struct JobMessage *next;
} JobMessage;

typedef void (*JobWorkerFunc)(JobWorker *w, void *userdata);
/* Called on the main loop for each message. After a RESULT message the
 * callback may free the worker. */
typedef void (*JobWorkerOnMessage)(JobWorker *w, const JobMessage *m, void *userdata);

int job_worker_new(JobWorker **ret, sd_event *event, JobWorkerFunc func, void *func_userdata,
                   JobWorkerOnMessage on_message, void *on_message_userdata);
int job_worker_start(JobWorker *w);
/* Joins the thread: only after RESULT (or before start). */
JobWorker *job_worker_free(JobWorker *w);
DEFINE_TRIVIAL_CLEANUP_FUNC(JobWorker *, job_worker_free);

/* Main loop side. */
void job_worker_cancel(JobWorker *w);
/* Answer a WAIT: a device snapshot (ownership passes), or an error
 * (-ETIMEDOUT, -ECANCELED) with dev = NULL. */
void job_worker_reply(JobWorker *w, JobDevice *dev, int error);

/* Worker side. */
bool job_worker_cancelled(JobWorker *w);
atomic_bool *job_worker_cancel_flag(JobWorker *w);
void job_worker_send_state(JobWorker *w, JobState s);
void job_worker_send_phase(JobWorker *w, JobPhase p);
void job_worker_send_progress(JobWorker *w, uint64_t done, uint64_t total);
void job_worker_send_device(JobWorker *w, const char *path);
void job_worker_log(JobWorker *w, const char *format, ...) __attribute__((format(printf, 2, 3)));
/* A line the submission may have logged already (the image checks run again
 * at the start of the flow): logged only when the log does not hold it. */
void job_worker_log_once(JobWorker *w, const char *line);
void job_worker_send_totals(JobWorker *w, const JobTotals *t);
/* Blocks until the main loop answers with the board in one of `modes` (1 << DeviceMode) on a
 * USB device other than `exclude_devnode` (a fresh enumeration); returns 0
 * and a device, -ETIMEDOUT or -ECANCELED. */
int job_worker_wait_device(JobWorker *w, unsigned modes, const char *exclude_devnode, uint64_t hint_usec,
                           uint64_t timeout_usec, JobDevice **ret);
void job_worker_send_result(JobWorker *w, JobError e, bool cancelled, const char *format, ...)
        __attribute__((format(printf, 4, 5)));
