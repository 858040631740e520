/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The queue's insides, for the files that implement job-queue.h with it:
 * job-queue.c (persistence, recovery, scheduling, the end of a loop turn),
 * job-submit.c (target resolution, checks, submission) and job-ports.c.
 * Only job-submit.c and job-ports.c use job-queue.c, never the other way
 * round. Not for other modules.
 */

#include "jobs/job-queue.h"
#include "util/list.h"

typedef struct JobRun JobRun;

struct JobQueue {
        sd_event *event;
        Inventory *inventory;
        const BoardDb *boards;
        JobQueueConfig config;
        char *state_dir;
        char *state_file;
        ImageStore *store;

        Job **jobs; /* by id, oldest first: queue and history */
        size_t n_jobs;
        uint64_t next_id;
        JobRun **runs; /* the running jobs (job-run.h) */
        size_t n_runs;
        bool started;
        bool stopping;                 /* the event loop is exiting: start nothing */
        sd_event_source *expire_timer; /* the next interrupted job to expire */

        /* Changes since the last loop turn: job_enter_state() and
         * job_mark_dirty() land here; one deferred event source saves
         * jobs.json once, schedules and sends each job's notification once. */
        sd_event_source *flush_source, *exit_source;
        Job *dirty; /* LIST(dirty), in the order of their first change */
        bool save_pending;
        unsigned n_saves; /* writes of jobs.json (for tests and measurements) */

        JobQueueOnUpdate on_update;
        void *on_update_userdata;
};

/* Take `j` into the queue (its changes are the queue's to save and announce). */
int job_queue_append(JobQueue *q, Job *j);
/* `newer` was accepted: the interrupted jobs of its board end superseded. */
void job_queue_supersede_older(JobQueue *q, Job *newer);
