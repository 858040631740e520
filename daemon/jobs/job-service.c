/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "jobs/job-service.h"
#include "manager.h"
#include "server/rpc.h"
#include "util/list.h"
#include "util/log.h"

typedef struct JobWaiter {
        RpcCall *call;
        uint64_t id;
        LIST_FIELDS(struct JobWaiter, waiters);
} JobWaiter;

struct JobService {
        Manager *manager;
        JobQueue *queue;
        JobWaiter *waiters;
        JobServiceObserver observer; /* the rules */
        void *observer_userdata;
};

static void job_service_broadcast(JobService *s, json_t *object)
{
        json_t *params = json_array();

        if (params && json_array_append_new(params, object) >= 0)
                (void)server_broadcast(s->manager->server, "notify_job_update", params);
        json_decref(params);
}

static void job_service_on_update(JobQueue *q, const Job *j, json_t *earlier, void *userdata)
{
        JobService *s = userdata;

        if (s->manager->server) {
                size_t i;
                json_t *o;
                /* the states it passed through since its last notification */
                json_array_foreach (earlier, i, o)
                        job_service_broadcast(s, json_incref(o));
                job_service_broadcast(s, job_to_json(j, false));
        }
        if (s->observer)
                s->observer(j, s->observer_userdata);

        if (!job_state_is_final(j->state))
                return;
        JobWaiter *w, *next;
        LIST_FOREACH_SAFE(waiters, w, next, s->waiters)
        {
                if (w->id != j->id)
                        continue;
                LIST_REMOVE(waiters, s->waiters, w);
                (void)rpc_call_reply(w->call, json_pack("{s:o}", "job", job_to_json(j, true)));
                rpc_call_unref(w->call);
                free(w);
        }
}

int job_service_new(JobService **ret, Manager *m, const JobQueueConfig *config)
{
        _cleanup_(job_service_freep) JobService *s = calloc(1, sizeof(JobService));
        int r;

        if (!s)
                return -ENOMEM;
        s->manager = m;
        r = job_queue_new(&s->queue, m->event, m->inventory, m->boards, config);
        if (r < 0)
                return r;
        job_queue_set_on_update(s->queue, job_service_on_update, s);
        *ret = TAKE_PTR(s);
        return 0;
}

JobService *job_service_free(JobService *s)
{
        if (!s)
                return NULL;
        while (s->waiters) {
                JobWaiter *w = LIST_POP(waiters, s->waiters);
                (void)rpc_call_reply_error(w->call, RPC_ERROR_SHUTTING_DOWN, NULL,
                                           "flashd is stopping; job %" PRIu64 " continues after its restart",
                                           w->id);
                rpc_call_unref(w->call);
                free(w);
        }
        s->queue = job_queue_free(s->queue);
        free(s);
        return NULL;
}

int job_service_start(JobService *s)
{
        return job_queue_start(s->queue);
}

JobQueue *job_service_get_queue(JobService *s)
{
        return s->queue;
}

int job_service_wait(JobService *s, RpcCall *call, uint64_t id)
{
        JobWaiter *w = calloc(1, sizeof(JobWaiter));

        if (!w)
                return -ENOMEM;
        w->call = rpc_call_ref(call);
        w->id = id;
        LIST_PREPEND(waiters, s->waiters, w);
        return 0;
}

void job_service_set_observer(JobService *s, JobServiceObserver cb, void *userdata)
{
        s->observer = cb;
        s->observer_userdata = userdata;
}
