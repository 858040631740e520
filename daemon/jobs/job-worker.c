/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <time.h>

#include "jobs/job-worker.h"

/* A worker waits for the main loop's answer at most this much longer than
 * the timeout it asked for: the main loop's timer normally answers first. */
#define JOB_WORKER_WAIT_MARGIN_USEC (5ull * 1000000ull)

struct JobWorker {
        sd_event_source *source;
        int efd;
        pthread_t thread;
        bool started;

        JobWorkerFunc func;
        void *func_userdata;
        JobWorkerOnMessage on_message;
        void *on_message_userdata;

        atomic_bool cancel;
        /* allocated up front: the result must reach the main loop even on OOM */
        JobMessage *result;

        pthread_mutex_t lock;
        pthread_cond_t cond;
        JobMessage *head, *tail; /* worker -> main loop */
        bool reply_ready;        /* main loop -> worker */
        JobDevice *reply_device;
        int reply_error;
};

static void job_message_free(JobMessage *m)
{
        if (!m)
                return;
        free(m->text);
        free(m);
}

static void job_worker_post(JobWorker *w, JobMessage *m)
{
        uint64_t one = 1;

        pthread_mutex_lock(&w->lock);
        if (m->type == JOB_MESSAGE_PROGRESS && w->tail && w->tail->type == JOB_MESSAGE_PROGRESS) {
                /* Merge: only the latest count matters. */
                w->tail->done = m->done;
                w->tail->total = m->total;
                pthread_mutex_unlock(&w->lock);
                job_message_free(m);
                return;
        }
        if (m->type == JOB_MESSAGE_PROGRESS && w->tail && w->tail->type == JOB_MESSAGE_PHASE) {
                /* A phase arrives with its total: sessions report (0, total)
                 * right after they enter a phase. */
                w->tail->done = m->done;
                w->tail->total = m->total;
                w->tail->has_progress = true;
                pthread_mutex_unlock(&w->lock);
                job_message_free(m);
                return;
        }
        if (w->tail)
                w->tail->next = m;
        else
                w->head = m;
        w->tail = m;
        pthread_mutex_unlock(&w->lock);
        /* An eventfd write only fails on counter overflow, which a reader prevents. */
        (void)!write(w->efd, &one, sizeof(one));
}

static int job_worker_on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        JobWorker *w = userdata;
        JobMessage *list;
        uint64_t n;

        (void)!read(fd, &n, sizeof(n));
        pthread_mutex_lock(&w->lock);
        list = w->head;
        w->head = w->tail = NULL;
        pthread_mutex_unlock(&w->lock);

        while (list) {
                JobMessage *m = list;
                bool last = m->type == JOB_MESSAGE_RESULT;

                list = m->next;
                /* After RESULT the callback may free `w`: do not touch it again. */
                w->on_message(w, m, w->on_message_userdata);
                job_message_free(m);
                if (last) {
                        while (list) {
                                JobMessage *rest = list;
                                list = rest->next;
                                job_message_free(rest);
                        }
                        break;
                }
        }
        return 0;
}

int job_worker_new(JobWorker **ret, sd_event *event, JobWorkerFunc func, void *func_userdata,
                   JobWorkerOnMessage on_message, void *on_message_userdata)
{
        JobWorker *w = calloc(1, sizeof(JobWorker));
        int r;

        if (!w)
                return -ENOMEM;
        w->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (w->efd < 0) {
                r = -errno;
                free(w);
                return r;
        }
        pthread_mutex_init(&w->lock, NULL);
        {
                pthread_condattr_t ca;
                pthread_condattr_init(&ca);
                pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
                pthread_cond_init(&w->cond, &ca);
                pthread_condattr_destroy(&ca);
        }
        atomic_init(&w->cancel, false);
        w->result = calloc(1, sizeof(JobMessage));
        if (!w->result) {
                job_worker_free(w);
                return -ENOMEM;
        }
        w->result->type = JOB_MESSAGE_RESULT;
        w->func = func;
        w->func_userdata = func_userdata;
        w->on_message = on_message;
        w->on_message_userdata = on_message_userdata;
        r = sd_event_add_io(event, &w->source, w->efd, EPOLLIN, job_worker_on_io, w);
        if (r < 0) {
                job_worker_free(w);
                return r;
        }
        *ret = w;
        return 0;
}

static void *job_worker_thread(void *userdata)
{
        JobWorker *w = userdata;

        w->func(w, w->func_userdata);
        return NULL;
}

int job_worker_start(JobWorker *w)
{
        int r = pthread_create(&w->thread, NULL, job_worker_thread, w);

        if (r != 0)
                return -r;
        w->started = true;
        return 0;
}

JobWorker *job_worker_free(JobWorker *w)
{
        if (!w)
                return NULL;
        if (w->started)
                pthread_join(w->thread, NULL);
        w->source = sd_event_source_disable_unref(w->source);
        safe_close(w->efd);
        while (w->head) {
                JobMessage *m = w->head;
                w->head = m->next;
                job_message_free(m);
        }
        job_device_free(w->reply_device);
        job_message_free(w->result);
        pthread_mutex_destroy(&w->lock);
        pthread_cond_destroy(&w->cond);
        free(w);
        return NULL;
}

void job_worker_cancel(JobWorker *w)
{
        atomic_store(&w->cancel, true);
        pthread_mutex_lock(&w->lock);
        pthread_cond_broadcast(&w->cond);
        pthread_mutex_unlock(&w->lock);
}

void job_worker_reply(JobWorker *w, JobDevice *dev, int error)
{
        pthread_mutex_lock(&w->lock);
        job_device_free(w->reply_device);
        w->reply_device = dev;
        w->reply_error = error;
        w->reply_ready = true;
        pthread_cond_broadcast(&w->cond);
        pthread_mutex_unlock(&w->lock);
}

bool job_worker_cancelled(JobWorker *w)
{
        return atomic_load(&w->cancel);
}

atomic_bool *job_worker_cancel_flag(JobWorker *w)
{
        return &w->cancel;
}

static JobMessage *job_message_new(JobMessageType type)
{
        JobMessage *m = calloc(1, sizeof(JobMessage));

        if (m)
                m->type = type;
        return m;
}

void job_worker_send_state(JobWorker *w, JobState s)
{
        JobMessage *m = job_message_new(JOB_MESSAGE_STATE);

        if (!m)
                return;
        m->state = s;
        job_worker_post(w, m);
}

void job_worker_send_phase(JobWorker *w, JobPhase p)
{
        JobMessage *m = job_message_new(JOB_MESSAGE_PHASE);

        if (!m)
                return;
        m->phase = p;
        job_worker_post(w, m);
}

void job_worker_send_progress(JobWorker *w, uint64_t done, uint64_t total)
{
        JobMessage *m = job_message_new(JOB_MESSAGE_PROGRESS);

        if (!m)
                return;
        m->done = done;
        m->total = total;
        job_worker_post(w, m);
}

void job_worker_send_device(JobWorker *w, const char *path)
{
        JobMessage *m = job_message_new(JOB_MESSAGE_DEVICE);

        if (!m)
                return;
        m->text = path ? strdup(path) : NULL;
        job_worker_post(w, m);
}

void job_worker_log_once(JobWorker *w, const char *line)
{
        JobMessage *m = job_message_new(JOB_MESSAGE_LOG);

        if (!m)
                return;
        m->text = strdup(line);
        m->once = true;
        job_worker_post(w, m);
}

void job_worker_send_totals(JobWorker *w, const JobTotals *t)
{
        JobMessage *m = job_message_new(JOB_MESSAGE_TOTALS);

        if (!m)
                return;
        m->totals = *t;
        job_worker_post(w, m);
}

void job_worker_log(JobWorker *w, const char *format, ...)
{
        JobMessage *m = job_message_new(JOB_MESSAGE_LOG);
        va_list ap;

        if (!m)
                return;
        va_start(ap, format);
        if (vasprintf(&m->text, format, ap) < 0)
                m->text = NULL;
        va_end(ap);
        job_worker_post(w, m);
}

int job_worker_wait_device(JobWorker *w, unsigned modes, const char *exclude_devnode, uint64_t hint_usec,
                           uint64_t timeout_usec, JobDevice **ret)
{
        JobMessage *m = job_message_new(JOB_MESSAGE_WAIT);
        struct timespec deadline;
        int r = 0;

        if (!m)
                return -ENOMEM;
        m->modes = modes;
        if (exclude_devnode) {
                m->text = strdup(exclude_devnode);
                if (!m->text) {
                        free(m);
                        return -ENOMEM;
                }
        }
        m->hint_usec = hint_usec;
        m->timeout_usec = timeout_usec;

        pthread_mutex_lock(&w->lock);
        w->reply_ready = false;
        job_device_free(w->reply_device);
        w->reply_device = NULL;
        pthread_mutex_unlock(&w->lock);
        job_worker_post(w, m);

        clock_gettime(CLOCK_MONOTONIC, &deadline);
        {
                uint64_t add =
                        (timeout_usec ? timeout_usec : 24ull * 3600 * 1000000) + JOB_WORKER_WAIT_MARGIN_USEC;
                uint64_t ns = (uint64_t)deadline.tv_nsec + (add % 1000000) * 1000;
                deadline.tv_sec += (time_t)(add / 1000000 + ns / 1000000000);
                deadline.tv_nsec = (long)(ns % 1000000000);
        }

        pthread_mutex_lock(&w->lock);
        while (!w->reply_ready && !atomic_load(&w->cancel)) {
                if (pthread_cond_timedwait(&w->cond, &w->lock, &deadline) == ETIMEDOUT) {
                        r = -ETIMEDOUT;
                        break;
                }
        }
        if (w->reply_ready) {
                r = w->reply_error;
                if (r >= 0) {
                        *ret = w->reply_device;
                        w->reply_device = NULL;
                }
                w->reply_ready = false;
        } else if (r == 0)
                r = -ECANCELED;
        pthread_mutex_unlock(&w->lock);
        return r;
}

void job_worker_send_result(JobWorker *w, JobError e, bool cancelled, const char *format, ...)
{
        JobMessage *m = TAKE_PTR(w->result);
        va_list ap;

        if (!m)
                return; /* a second result: ignored */
        m->error = e;
        m->cancelled = cancelled;
        if (format) {
                va_start(ap, format);
                if (vasprintf(&m->text, format, ap) < 0)
                        m->text = NULL;
                va_end(ap);
        }
        job_worker_post(w, m);
}
