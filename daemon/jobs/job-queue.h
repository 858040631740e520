/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The job queue: owned by the main loop. One running job per board (USB
 * port path), jobs on different boards in parallel, each running job's flow
 * on its own worker thread (job-worker.h, job-flow.h). Waits for a board to
 * show up are answered from inventory events, never by polling.
 *
 * The queue and the history are persisted in <state dir>/jobs.json and the
 * images in <state dir>/images/ (content-addressed), so both survive a
 * restart; a job that was flashing when flashd stopped is marked
 * interrupted and retried when its board shows up in its bootloader
 * (retry_interrupted = yes), or failed with a clear message. An interrupted
 * job is never retried once a job accepted later for the same board has
 * taken over (it ends superseded), nor after interrupted_expire_usec (it
 * fails as expired): either would write an older image over a newer one.
 */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "boards/board-db.h"
#include "inventory/inventory.h"
#include "jobs/image-store.h"
#include "jobs/job.h"

typedef struct JobQueue JobQueue;

typedef struct JobQueueConfig {
        const char *state_dir;            /* jobs.json and images/ live here */
        bool retry_interrupted;           /* default true */
        uint64_t interrupted_expire_usec; /* an interrupted job fails after this (1 day); 0 never */
        uint64_t reboot_wait_usec;        /* show the board's hint after this (10 s) */
        uint64_t device_timeout_usec;     /* give up waiting for the bootloader (10 min) */
        uint64_t app_timeout_usec;        /* give up waiting for the app after leave (60 s) */
        unsigned history_max;             /* finished jobs kept (100) */
        char *const *stop_units;          /* units paused around a flash from app mode (borrowed) */
        unsigned uart_baud;               /* UART rate for reboot = uart-request boards (250000) */
} JobQueueConfig;

#define JOB_QUEUE_CONFIG_DEFAULTS                                            \
        ((JobQueueConfig){ .retry_interrupted = true,                        \
                           .interrupted_expire_usec = 86400ull * 1000000ull, \
                           .reboot_wait_usec = 10ull * 1000000ull,           \
                           .device_timeout_usec = 600ull * 1000000ull,       \
                           .app_timeout_usec = 60ull * 1000000ull,           \
                           .history_max = 100,                               \
                           .uart_baud = 250000 })

/* Called on the main loop for each job that changed, once per loop turn
 * (progress at most a few times per second per job), after jobs.json was
 * saved. `earlier` (NULL: none) is the job as it was at each state or phase
 * it passed through since its last notification, oldest first: each is
 * announced too, before the job as it is now. */
typedef void (*JobQueueOnUpdate)(JobQueue *q, const Job *j, json_t *earlier, void *userdata);

/* `inv` and `boards` are borrowed and must outlive the queue. */
int job_queue_new(JobQueue **ret, sd_event *event, Inventory *inv, const BoardDb *boards,
                  const JobQueueConfig *config);
JobQueue *job_queue_free(JobQueue *q);
DEFINE_TRIVIAL_CLEANUP_FUNC(JobQueue *, job_queue_free);

void job_queue_set_on_update(JobQueue *q, JobQueueOnUpdate cb, void *userdata);
/* Load the persisted queue, attach to the inventory, start what can run. */
int job_queue_start(JobQueue *q);

ImageStore *job_queue_get_image_store(JobQueue *q);

typedef struct JobRequest {
        const char *target;
        const uint8_t *data; /* the image file's bytes */
        size_t size;
        const char *format; /* "bin", "hex", "dfu" or NULL: detect */
        uint32_t address;
        bool has_address;
        bool verify;
        bool mass_erase;
        unsigned force;     /* 1 << ImageCheck */
        const char *source; /* NULL: "manual"; else a rule id */
        /* A board name that picks among the candidates of a device the
         * inventory cannot tell apart (a rule's match.board), as
         * flashing by that name would; NULL: none. */
        const char *board;
        JobRequester requested_by;
        const char *image_name; /* the file's name as the client gave it, or NULL */
        bool opened_by_path;    /* flashd read the file for the client (image.path) */
} JobRequest;

/*
 * Resolve the target, parse and check the image against what is known of
 * the board, store the image and queue the job. On success returns 0 and
 * the job (owned by the queue). A refusal (unknown target, bad image, a
 * safety check) returns a negative errno with *ret_error and a malloc'd
 * *ret_message; a refused job that got as far as a board is kept in the
 * history as failed and returned in *ret_job too (NULL otherwise).
 */
int job_queue_submit(JobQueue *q, const JobRequest *req, Job **ret_job, JobError *ret_error,
                     char **ret_message);

Job *job_queue_find(JobQueue *q, uint64_t id);

/* The unfinished job that holds a port (the one busy with the board, else
 * the next queued), or NULL; and each port held so, once (job-ports.c). */
const Job *job_queue_port_holder(JobQueue *q, const char *port);
void job_queue_foreach_held_port(JobQueue *q, void (*f)(const Job *holder, void *userdata), void *userdata);
/* {"id", "state", "phase"}: a device's "job" */
json_t *job_port_json(const Job *j);
/* The device object of a board away from its port while its job reboots it. */
json_t *job_absent_device_json(const Job *j);
/* -ENOENT no such job, -EALREADY already finished; 0 cancelled or cancelling. */
int job_queue_cancel(JobQueue *q, uint64_t id);
/* A job that has not ended yet (an expired interrupted one has) owns the port. */
bool job_queue_port_busy(JobQueue *q, const char *port);
/* Jobs, oldest first; `all` includes finished ones. */
json_t *job_queue_list_json(JobQueue *q, bool all);

/* Persist now, unconditionally. */
int job_queue_save(JobQueue *q);
/* What the end of the loop turn does, now, but for the notifications:
 * start what can run, drop old history, write jobs.json if anything
 * changed. For a caller that must have the queue on disk before it goes
 * on (a job is on disk before its submission is answered). */
int job_queue_flush(JobQueue *q);
