/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/log.h"
#include "util/macros.h"
#include "update/host-version.h"
#include "update/klipper-tree.h"
#include "util/time-util.h"

#define KEY_MAX 512

typedef struct Waiter {
        HostVersionReady cb;
        void *userdata;
        struct Waiter *next;
} Waiter;

struct HostVersion {
        sd_event_source *source;
        int pipe[2];
        /* the answer */
        char *tree, *user, *key;
        char *version, *error;
        uint64_t when; /* CLOCK_MONOTONIC of the answer, 0: none */
        /* the run under way (main loop writes before start, the thread its results) */
        bool running;
        pthread_t thread;
        KlipperBuilder builder;
        char *run_tree, *run_user, *run_key;
        char *run_version, *run_error;
        int run_r;
        Waiter *waiters;
        bool serving; /* calling the waiters: they get the answer they waited for */
};

static void key_add(char *key, size_t size, const char *tree, const char *rel)
{
        char path[4096];
        struct stat st;
        size_t n = strlen(key);

        snprintf(path, sizeof(path), "%s/.git/%s", tree, rel);
        if (stat(path, &st) < 0)
                snprintf(key + n, size - n, "-|");
        else
                snprintf(key + n, size - n, "%lld.%ld:%lld|", (long long)st.st_mtim.tv_sec,
                         st.st_mtim.tv_nsec, (long long)st.st_size);
}

/* What a commit, checkout or tag changes (see the header). Not the index:
 * `git describe --dirty` itself rewrites it when file stats changed. */
static char *tree_key(const char *tree)
{
        char key[KEY_MAX] = "", path[4096], head[256];
        static const char *const files[] = { "HEAD", "packed-refs", "refs/heads", "refs/tags" };

        for (size_t i = 0; i < ELEMENTSOF(files); i++)
                key_add(key, sizeof(key), tree, files[i]);
        /* the branch HEAD names: a commit rewrites that file */
        snprintf(path, sizeof(path), "%s/.git/HEAD", tree);
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        if (f && fgets(head, sizeof(head), f) && strncmp(head, "ref: ", 5) == 0) {
                head[strcspn(head, "\n")] = '\0';
                if (!strstr(head + 5, ".."))
                        key_add(key, sizeof(key), tree, head + 5);
        }
        return strdup(key);
}

static void *git_thread(void *userdata)
{
        HostVersion *hv = userdata;

        hv->run_r = klipper_tree_version(&hv->builder, hv->run_tree, &hv->run_version, &hv->run_error);
        if (write(hv->pipe[1], "x", 1) != 1)
                hv->run_r = -EIO;
        return NULL;
}

static char *mfree(char *p)
{
        free(p);
        return NULL;
}

static void run_clear(HostVersion *hv)
{
        klipper_builder_done(&hv->builder);
        hv->run_tree = mfree(hv->run_tree);
        hv->run_user = mfree(hv->run_user);
        hv->run_key = mfree(hv->run_key);
        hv->run_version = mfree(hv->run_version);
        hv->run_error = mfree(hv->run_error);
}

static void call_waiters(HostVersion *hv, bool cancelled)
{
        Waiter *w = hv->waiters;

        /* a callback may wait again: it lands on the new list */
        hv->waiters = NULL;
        hv->serving = !cancelled;
        while (w) {
                Waiter *next = w->next;
                w->cb(w->userdata, cancelled);
                free(w);
                w = next;
        }
        hv->serving = false;
}

/* The run's tree, user and key become the cached answer's, with its
 * version or error (taken). */
static void adopt_run(HostVersion *hv, char *version, char *error)
{
        free(hv->tree);
        free(hv->user);
        free(hv->key);
        free(hv->version);
        free(hv->error);
        hv->tree = TAKE_PTR(hv->run_tree);
        hv->user = TAKE_PTR(hv->run_user);
        hv->key = TAKE_PTR(hv->run_key);
        hv->version = version;
        hv->error = error;
        hv->when = now_usec(CLOCK_MONOTONIC);
}

static int on_done(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        HostVersion *hv = userdata;
        char c;

        while (read(fd, &c, 1) == 1) {
                if (!hv->running)
                        continue;
                pthread_join(hv->thread, NULL);
                hv->running = false;
                adopt_run(hv, hv->run_r >= 0 ? TAKE_PTR(hv->run_version) : NULL,
                          hv->run_r >= 0 ? NULL : TAKE_PTR(hv->run_error));
                if (!hv->version && !hv->error &&
                    asprintf(&hv->error, "cannot read the Klipper version of %s: %s", strna(hv->tree),
                             strerror(-(hv->run_r < 0 ? hv->run_r : EBADMSG))) < 0)
                        hv->error = NULL;
                run_clear(hv);
                log_debug("host version of %s: %s", strna(hv->tree), hv->version ?: strna(hv->error));
                call_waiters(hv, false);
        }
        return 0;
}

static int start(HostVersion *hv, const char *tree, const char *user, char *key)
{
        _cleanup_free_ char *error = NULL;
        int r;

        hv->run_key = key;
        hv->run_tree = strdup(tree);
        hv->run_user = user ? strdup(user) : NULL;
        if (!hv->run_tree || (user && !hv->run_user)) {
                run_clear(hv);
                return -ENOMEM;
        }
        r = klipper_builder_resolve(tree, user, &hv->builder, &error);
        if (r < 0) {
                /* nothing to run: the answer is the reason, at once */
                adopt_run(hv, NULL, TAKE_PTR(error));
                if (!hv->error &&
                    asprintf(&hv->error, "cannot use the Klipper tree %s: %s", tree, strerror(-r)) < 0)
                        hv->error = NULL;
                run_clear(hv);
                return hv->error ? 1 : -ENOMEM;
        }
        r = -pthread_create(&hv->thread, NULL, git_thread, hv);
        if (r < 0) {
                run_clear(hv);
                return r;
        }
        hv->running = true;
        return 0;
}

int host_version_get(HostVersion *hv, const char *tree, const char *user, const char **ret_version,
                     const char **ret_error)
{
        char *key;
        bool same, fresh;
        int r;

        if (!tree)
                return -EINVAL;
        key = tree_key(tree);
        if (!key)
                return -ENOMEM;
        same = hv->when && streq_ptr(hv->tree, tree) && streq_ptr(hv->user, user) &&
               (hv->serving || streq_ptr(hv->key, key));
        /* one who waited takes the answer just made, even if the tree
         * moved meanwhile: a busy tree cannot keep a caller waiting */
        fresh = same && (hv->serving || now_usec(CLOCK_MONOTONIC) < hv->when + HOST_VERSION_TTL_USEC);
        if (!fresh && !hv->running) {
                r = start(hv, tree, user, key);
                if (r < 0)
                        return r;
                if (r > 0)
                        same = true; /* answered at once (no builder) */
        } else
                free(key);
        if (!same)
                return 0;
        *ret_version = hv->version;
        *ret_error = hv->version ? NULL : hv->error;
        return 1;
}

int host_version_on_ready(HostVersion *hv, HostVersionReady cb, void *userdata)
{
        Waiter *w = calloc(1, sizeof(*w));

        if (!w)
                return -ENOMEM;
        w->cb = cb;
        w->userdata = userdata;
        w->next = hv->waiters;
        hv->waiters = w;
        return 0;
}

int host_version_new(HostVersion **ret, sd_event *event)
{
        HostVersion *hv = calloc(1, sizeof(*hv));
        int r;

        if (!hv)
                return -ENOMEM;
        hv->pipe[0] = hv->pipe[1] = -EBADF;
        if (pipe2(hv->pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
                r = -errno;
                host_version_free(hv);
                return r;
        }
        r = sd_event_add_io(event, &hv->source, hv->pipe[0], EPOLLIN, on_done, hv);
        if (r < 0) {
                host_version_free(hv);
                return r;
        }
        *ret = hv;
        return 0;
}

HostVersion *host_version_free(HostVersion *hv)
{
        if (!hv)
                return NULL;
        if (hv->running)
                pthread_join(hv->thread, NULL); /* git has a deadline (klipper-tree.c) */
        run_clear(hv);
        call_waiters(hv, true);
        /* a callback cannot wait again once cancelled; drop any that did */
        while (hv->waiters) {
                Waiter *w = hv->waiters;
                hv->waiters = w->next;
                free(w);
        }
        sd_event_source_disable_unref(hv->source);
        if (hv->pipe[0] >= 0)
                close(hv->pipe[0]);
        if (hv->pipe[1] >= 0)
                close(hv->pipe[1]);
        free(hv->tree);
        free(hv->user);
        free(hv->key);
        free(hv->version);
        free(hv->error);
        free(hv);
        return NULL;
}
