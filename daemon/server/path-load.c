/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "util/macros.h"
#include "server/path-load.h"
#include "server/peer-open.h"

typedef struct PathLoad {
        atomic_int n_ref; /* the thread's and the main loop's */

        /* input, read by the thread */
        PeerCred *peer;
        char *path;
        int flags;
        PathLoadReadFunc read_fn; /* NULL: the open file itself is the result */
        PathOpenFunc open_fn;     /* NULL: peer_open_as(peer, path, flags) */
        void *open_data;
        void (*open_data_free)(void *);
        int efd; /* the thread writes it when the result is ready */

        /* result, written by the thread before it writes efd */
        int r;
        uint8_t *data;
        size_t size;
        int fd;
        char *resolved;
        char *message;

        /* main loop only */
        sd_event_source *io, *timer;
        PathLoadDone done;
        PathOpenDone open_done;
        void *userdata;
} PathLoad;

static atomic_uint n_threads;

static void path_load_unref(PathLoad *l)
{
        if (atomic_fetch_sub(&l->n_ref, 1) != 1)
                return;
        peer_cred_free(l->peer);
        free(l->path);
        if (l->open_data_free)
                l->open_data_free(l->open_data);
        free(l->data);
        safe_close(l->fd);
        free(l->resolved);
        free(l->message);
        safe_close(l->efd);
        free(l);
}

static void *path_load_thread(void *userdata)
{
        PathLoad *l = userdata;
        int fd = -EBADF;

        if (l->open_fn)
                l->r = l->open_fn(l->open_data, &fd, &l->resolved, &l->message);
        else
                l->r = peer_open_as(l->peer, l->path, l->flags, &fd, &l->message);
        if (l->r >= 0 && l->read_fn) {
                l->r = l->read_fn(fd, &l->data, &l->size);
                safe_close(fd);
        } else if (l->r >= 0)
                l->fd = fd;
        uint64_t one = 1;
        (void)!write(l->efd, &one, sizeof(one));
        path_load_unref(l);
        atomic_fetch_sub(&n_threads, 1);
        return NULL;
}

/* Main loop: hand the result (or the timeout) on once, then let go. */
static void path_load_finish(PathLoad *l, int r, char *message)
{
        uint8_t *data = NULL;
        size_t size = 0;
        int fd = -EBADF;
        char *resolved = NULL;

        l->io = sd_event_source_disable_unref(l->io);
        l->timer = sd_event_source_disable_unref(l->timer);
        if (r != -ETIMEDOUT) { /* the thread is done with its result */
                data = TAKE_PTR(l->data);
                size = l->size;
                fd = TAKE_FD(l->fd);
                resolved = TAKE_PTR(l->resolved);
                message = TAKE_PTR(l->message);
        }
        if (l->open_done) {
                free(data);
                l->open_done(r, fd, resolved, message, l->userdata);
        } else {
                safe_close(fd);
                free(resolved);
                l->done(r, data, size, message, l->userdata);
        }
        path_load_unref(l);
}

static int on_path_load_ready(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        PathLoad *l = userdata;

        path_load_finish(l, l->r, NULL);
        return 0;
}

static int on_path_load_timeout(sd_event_source *s, uint64_t usec, void *userdata)
{
        PathLoad *l = userdata;
        char *message = NULL;

        if (asprintf(&message,
                     "opening and reading %s took longer than %llu s (a hung or slow file system?); pass "
                     "the file itself (flashctl sends an open file descriptor) or upload its data",
                     l->path, (unsigned long long)((PATH_LOAD_TIMEOUT_USEC + 999999) / 1000000)) < 0)
                message = NULL;
        path_load_finish(l, -ETIMEDOUT, message);
        return 0;
}

static int path_load_spawn(PathLoad *l)
{
        pthread_attr_t attr;
        pthread_t tid;
        sigset_t all, old;
        int r;

        /* The thread takes no signals (the main loop reads them). */
        atomic_fetch_add(&l->n_ref, 1);
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        r = -pthread_create(&tid, &attr, path_load_thread, l);
        pthread_attr_destroy(&attr);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (r < 0)
                atomic_fetch_sub(&l->n_ref, 1);
        return r;
}

/* Takes `l` (its input filled in) and starts its thread. */
static int path_load_launch(sd_event *e, PathLoad *l, uint64_t timeout_usec)
{
        int r;

        l->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        r = l->efd < 0 ? -errno : !l->path ? -ENOMEM : 0;
        if (r >= 0)
                r = sd_event_add_io(e, &l->io, l->efd, EPOLLIN, on_path_load_ready, l);
        if (r >= 0)
                r = sd_event_add_time_relative(e, &l->timer, CLOCK_MONOTONIC, timeout_usec, 0,
                                               on_path_load_timeout, l);
        if (r >= 0)
                r = path_load_spawn(l);
        if (r < 0) {
                l->io = sd_event_source_disable_unref(l->io);
                l->timer = sd_event_source_disable_unref(l->timer);
                atomic_fetch_sub(&n_threads, 1);
                path_load_unref(l);
        }
        return r;
}

static PathLoad *path_load_new(void)
{
        PathLoad *l;

        if (atomic_fetch_add(&n_threads, 1) >= PATH_LOAD_THREADS_MAX) {
                atomic_fetch_sub(&n_threads, 1);
                errno = EBUSY;
                return NULL;
        }
        l = calloc(1, sizeof(*l));
        if (!l) {
                atomic_fetch_sub(&n_threads, 1);
                errno = ENOMEM;
                return NULL;
        }
        atomic_init(&l->n_ref, 1);
        l->efd = l->fd = -EBADF;
        return l;
}

int path_load_start(sd_event *e, const PeerCred *peer, const char *path, int flags, PathLoadReadFunc read_fn,
                    uint64_t timeout_usec, PathLoadDone done, void *userdata)
{
        PathLoad *l = path_load_new();
        int r;

        if (!l)
                return -errno;
        l->flags = flags;
        l->read_fn = read_fn;
        l->done = done;
        l->userdata = userdata;
        l->path = strdup(path);
        r = peer_cred_new(&l->peer, peer->pid, peer->uid, peer->gid, peer->groups, peer->n_groups);
        if (r < 0) {
                atomic_fetch_sub(&n_threads, 1);
                path_load_unref(l);
                return r;
        }
        return path_load_launch(e, l, timeout_usec);
}

int path_open_start(sd_event *e, const char *path, PathOpenFunc open_fn, void *open_data,
                    void (*open_data_free)(void *), uint64_t timeout_usec, PathOpenDone done, void *userdata)
{
        PathLoad *l = path_load_new();

        if (!l) {
                open_data_free(open_data);
                return -errno;
        }
        l->open_fn = open_fn;
        l->open_data = open_data;
        l->open_data_free = open_data_free;
        l->open_done = done;
        l->userdata = userdata;
        l->path = strdup(path);
        return path_load_launch(e, l, timeout_usec);
}
