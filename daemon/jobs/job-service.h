/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The jobs part of the Manager: the JobQueue, its notifications
 * (notify_job_update to identified clients) and the calls that wait for a
 * job to end (job.flash with wait: true). The methods are in job-methods.c.
 */

#include "jobs/job-queue.h"

typedef struct Manager Manager;
typedef struct RpcCall RpcCall;
typedef struct JobService JobService;

int job_service_new(JobService **ret, Manager *m, const JobQueueConfig *config);
JobService *job_service_free(JobService *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(JobService *, job_service_free);
int job_service_start(JobService *s);

JobQueue *job_service_get_queue(JobService *s);
/* Answer `call` with the job object once job `id` has ended (takes a reference). */
int job_service_wait(JobService *s, RpcCall *call, uint64_t id);

/* One more module that follows every job change, after the notification
 * went out: the rules learn which image a board holds and retry
 * their failed jobs. NULL removes it. */
typedef void (*JobServiceObserver)(const Job *j, void *userdata);
void job_service_set_observer(JobService *s, JobServiceObserver cb, void *userdata);
