/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What job-queue.c (running jobs, persistence) and job-submit.c (target
 * resolution, board information, submission) share. Not for other modules.
 */

#include "jobs/job-flow.h"
#include "jobs/job-queue.h"

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

/* Board and variant of a job: from the inventory entry (identified, named
 * by the user among candidates, or candidates sharing their geometry),
 * else from the names recorded at submission. Either may be NULL. */
void job_queue_board_of(JobQueue *q, const Job *j, const InventoryEntry *e, const Board **ret_b,
                        const BoardVariant **ret_v);
int job_flow_board_fill(JobFlowBoard *fb, const Board *b, const BoardVariant *v);
