/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * path-load: a file is opened (and read) on a thread of its own, so an open
 * that hangs leaves the main loop running; a hung open is answered with
 * -ETIMEDOUT and its thread's input is freed when the thread ends.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include "util/macros.h"
#include "server/path-load.h"
#include "tests.h"

/* An open that waits until the main loop writes to `gate`. */
typedef struct GatedOpen {
        int gate[2];
        char *file; /* what it opens once let through */
        atomic_int *freed;
} GatedOpen;

static void gated_open_free(void *p)
{
        GatedOpen *g = p;
        atomic_fetch_add(g->freed, 1);
        free(g->file);
        free(g);
}

static int gated_open(void *p, int *ret_fd, char **ret_resolved, char **ret_message)
{
        GatedOpen *g = p;
        struct pollfd pfd = { .fd = g->gate[0], .events = POLLIN };
        char c;

        if (poll(&pfd, 1, 10000) != 1 || read(g->gate[0], &c, 1) != 1)
                return -EIO;
        if (c == 'n') {
                *ret_message = strdup("refused by the test");
                return -EACCES;
        }
        int fd = open(g->file, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        *ret_fd = fd;
        *ret_resolved = strdup(g->file);
        return 0;
}

typedef struct Outcome {
        int calls, r, fd;
        char *resolved, *message;
        bool loop_ran_meanwhile; /* the timer fired while the open waited */
} Outcome;

static void on_opened(int r, int fd, char *resolved, char *message, void *userdata)
{
        Outcome *o = userdata;
        o->calls++;
        o->r = r;
        o->fd = fd;
        o->resolved = resolved;
        o->message = message;
}

typedef struct Gate {
        int fd;
        char c;
        bool *ran;
} Gate;

/* The main loop is free while the open waits: this timer runs, then lets
 * the open through. */
static int on_release(sd_event_source *s, uint64_t usec, void *userdata)
{
        Gate *g = userdata;
        *g->ran = true;
        if (g->c)
                (void)!write(g->fd, &g->c, 1);
        return 0;
}

static void run_until(sd_event *e, const int *calls)
{
        for (int i = 0; i < 200 && *calls == 0; i++)
                CHECK(sd_event_run(e, 100 * 1000) >= 0);
}

static GatedOpen *gated_new(const char *file, atomic_int *freed)
{
        GatedOpen *g = calloc(1, sizeof(*g));
        if (!g || pipe2(g->gate, O_CLOEXEC) < 0)
                abort();
        g->file = strdup(file);
        g->freed = freed;
        return g;
}

static void test_open_off_the_loop(sd_event *e, const char *file)
{
        static const struct {
                char release; /* what the main loop sends the waiting open */
                int want_r;
        } cases[] = {
                { 'y', 0 },
                { 'n', -EACCES },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                atomic_int freed = 0;
                GatedOpen *g = gated_new(file, &freed);
                int gate_w = g->gate[1], gate_r = g->gate[0];
                Outcome o = { .fd = -EBADF };
                Gate gate = { .fd = gate_w, .c = cases[i].release, .ran = &o.loop_ran_meanwhile };
                sd_event_source *t = NULL;

                CHECK_INT(
                        sd_event_add_time_relative(e, &t, CLOCK_MONOTONIC, 50 * 1000, 0, on_release, &gate),
                        0);
                CHECK_INT(path_open_start(e, "the/path", gated_open, g, gated_open_free, 5 * 1000 * 1000,
                                          on_opened, &o),
                          0);
                run_until(e, &o.calls);
                CHECK_INT(o.calls, 1);
                CHECK(o.loop_ran_meanwhile);
                CHECK_INT(o.r, cases[i].want_r);
                if (cases[i].want_r == 0) {
                        CHECK(o.fd >= 0);
                        CHECK_STR(o.resolved, file);
                        char buf[8] = {};
                        CHECK_INT(read(o.fd, buf, sizeof(buf) - 1), 5);
                        CHECK_STR(buf, "hello");
                } else {
                        CHECK_INT(o.fd, -EBADF);
                        CHECK_STR(o.message, "refused by the test");
                }
                for (int k = 0; k < 200 && atomic_load(&freed) == 0; k++)
                        usleep(10 * 1000);
                CHECK_INT(atomic_load(&freed), 1);
                safe_close(o.fd);
                free(o.resolved);
                free(o.message);
                sd_event_source_disable_unref(t);
                close(gate_w);
                close(gate_r);
        }
}

/* An open that never comes back in time: answered with -ETIMEDOUT, the
 * path named; the thread's input is freed when it finally ends. */
static void test_open_timeout(sd_event *e, const char *file)
{
        atomic_int freed = 0;
        GatedOpen *g = gated_new(file, &freed);
        int gate_w = g->gate[1], gate_r = g->gate[0];
        Outcome o = { .fd = -EBADF };

        CHECK_INT(path_open_start(e, "slow/klipper.bin", gated_open, g, gated_open_free, 100 * 1000,
                                  on_opened, &o),
                  0);
        run_until(e, &o.calls);
        CHECK_INT(o.calls, 1);
        CHECK_INT(o.r, -ETIMEDOUT);
        CHECK_INT(o.fd, -EBADF);
        CHECK(o.message && strstr(o.message, "slow/klipper.bin"));
        CHECK_INT(atomic_load(&freed), 0); /* the thread still waits */
        (void)!write(gate_w, "y", 1);
        for (int k = 0; k < 200 && atomic_load(&freed) == 0; k++)
                usleep(10 * 1000);
        CHECK_INT(atomic_load(&freed), 1);
        for (int k = 0; k < 5; k++) /* a late result goes nowhere */
                CHECK(sd_event_run(e, 10 * 1000) >= 0);
        CHECK_INT(o.calls, 1);
        free(o.message);
        close(gate_w);
        close(gate_r);
}

int main(void)
{
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        char file[] = "/tmp/test-path-load-XXXXXX";
        int fd = mkstemp(file);

        if (fd < 0 || write(fd, "hello", 5) != 5 || sd_event_new(&e) < 0)
                return EXIT_FAILURE;
        close(fd);
        test_open_off_the_loop(e, file);
        test_open_timeout(e, file);
        unlink(file);
        TESTS_EXIT();
}
