/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The job queue on its own event loop, without boards: recovery from a
 * saved jobs.json, state changes saved once and announced once per loop
 * turn (every state kept), expiry of interrupted jobs, supersede, and a
 * submission that is on disk before it returns. */
#include <ftw.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "jobs/job-queue-internal.h"
#include "util/json-file.h"
#include "tests.h"

#define MAX_SEEN 64

typedef struct Seen {
        unsigned n;
        uint64_t id[MAX_SEEN];
        char state[MAX_SEEN][32];
        char phase[MAX_SEEN][16];
        bool on_disk[MAX_SEEN]; /* jobs.json said the same state when it went out */
} Seen;

typedef struct Fixture {
        uint64_t cancel_when, cancel_what; /* on the notification of job cancel_when, cancel another */
        char dir[64];
        char *state_file;
        sd_event *event;
        Inventory *inv;
        JobQueue *q;
        Seen seen;
} Fixture;

static double now_sec(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The state of job `id` in jobs.json, or "" */
static void disk_state(Fixture *f, uint64_t id, char *buf, size_t size)
{
        json_t *root = NULL, *o;
        size_t i;

        buf[0] = 0;
        if (json_file_read(f->state_file, &root, NULL) < 0)
                return;
        json_array_foreach (json_object_get(root, "jobs"), i, o)
                if ((uint64_t)json_integer_value(json_object_get(o, "id")) == id)
                        snprintf(buf, size, "%s", json_string_value(json_object_get(o, "state")));
        json_decref(root);
}

static void record(Fixture *f, json_t *o)
{
        Seen *s = &f->seen;
        char disk[32];

        if (s->n >= MAX_SEEN)
                return;
        s->id[s->n] = (uint64_t)json_integer_value(json_object_get(o, "id"));
        snprintf(s->state[s->n], sizeof(s->state[s->n]), "%s",
                 json_string_value(json_object_get(o, "state")));
        snprintf(s->phase[s->n], sizeof(s->phase[s->n]), "%s",
                 json_string_value(json_object_get(o, "phase")));
        disk_state(f, s->id[s->n], disk, sizeof(disk));
        s->on_disk[s->n] = streq(disk, s->state[s->n]);
        s->n++;
}

static void on_update(JobQueue *q, const Job *j, json_t *earlier, void *userdata)
{
        Fixture *f = userdata;
        size_t i;
        json_t *o;

        json_array_foreach (earlier, i, o) {
                /* an earlier state: jobs.json has moved on, it need not say it */
                record(f, o);
                f->seen.on_disk[f->seen.n - 1] = true;
        }
        o = job_to_json(j, false);
        record(f, o);
        json_decref(o);
        if (f->cancel_when == j->id) {
                f->cancel_when = 0;
                CHECK_INT(job_queue_cancel(q, f->cancel_what), 0);
        }
}

static json_t *job_state_json(uint64_t id, const char *state, const char *phase, const char *port,
                              bool was_flashing, double interrupted_at)
{
        json_t *o =
                json_pack("{s:I, s:s, s:s, s:s, s:s, s:{s:s, s:I}, s:b, s:f}", "id", (json_int_t)id, "state",
                          state, "phase", phase, "port", port, "target", port, "image", "sha256",
                          "0000000000000000000000000000000000000000000000000000000000000000", "size",
                          (json_int_t)1024, "was_flashing", was_flashing, "created", now_sec() - 3600);
        if (interrupted_at > 0)
                json_object_set_new(o, "interrupted_at", json_real(interrupted_at));
        return o;
}

static unsigned history_max = 100;

/* `jobs` (taken) is written as jobs.json first; NULL: none. */
static void fixture_start(Fixture *f, json_t *jobs, bool retry, uint64_t expire_usec)
{
        JobQueueConfig c = JOB_QUEUE_CONFIG_DEFAULTS;

        c.history_max = history_max;
        *f = (Fixture){};
        snprintf(f->dir, sizeof(f->dir), "/tmp/test-job-queue-XXXXXX");
        CHECK(mkdtemp(f->dir) != NULL);
        CHECK(asprintf(&f->state_file, "%s/jobs.json", f->dir) > 0);
        if (jobs) {
                json_t *root =
                        json_pack("{s:i, s:I, s:o}", "version", 1, "next_id", (json_int_t)1, "jobs", jobs);
                CHECK_INT(json_file_write_atomic(f->state_file, root, 0600), 0);
                json_decref(root);
        }
        c.state_dir = f->dir;
        c.retry_interrupted = retry;
        c.interrupted_expire_usec = expire_usec;
        CHECK_INT(sd_event_new(&f->event), 0);
        CHECK_INT(inventory_new(&f->inv, f->event, NULL), 0);
        CHECK_INT(job_queue_new(&f->q, f->event, f->inv, NULL, &c), 0);
        job_queue_set_on_update(f->q, on_update, f);
        CHECK_INT(job_queue_start(f->q), 0);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        return remove(path);
}

static void fixture_stop(Fixture *f)
{
        job_queue_free(f->q);
        inventory_free(f->inv);
        sd_event_unref(f->event);
        nftw(f->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
        free(f->state_file);
}

/* Run the loop until nothing is pending. */
static void run_idle(Fixture *f)
{
        for (int i = 0; i < 1000 && sd_event_run(f->event, 0) > 0; i++)
                ;
}

/* Run the loop until job `id` has ended (or `timeout_sec`). */
static void run_until_final(Fixture *f, uint64_t id, double timeout_sec)
{
        double deadline = now_sec() + timeout_sec;

        while (now_sec() < deadline) {
                Job *j = job_queue_find(f->q, id);
                if (!j || job_state_is_final(j->state))
                        break;
                (void)sd_event_run(f->event, 50 * 1000);
        }
        run_idle(f);
}

static int seen_index(const Seen *s, uint64_t id, const char *state)
{
        for (unsigned i = 0; i < s->n; i++)
                if (s->id[i] == id && streq(s->state[i], state))
                        return (int)i;
        return -1;
}

/* ---- recovery ---- */

static const struct {
        const char *state, *phase;
        bool was_flashing;
        double interrupted_ago; /* seconds; 0: none recorded */
        bool retry;             /* retry_interrupted */
        const char *want_state, *want_phase;
        JobError want_error;
        const char *want_message; /* a part of it, or NULL */
} recovery_table[] = {
        /* cut short while flashing: retried later, from the start, and the
         * phase it was cut short in is kept (past leave the image is whole) */
        { "flashing", "write", true, 0, true, "interrupted", "write", JOB_ERROR_NONE,
          "interrupted by a restart" },
        { "flashing", "leave", true, 0, true, "interrupted", "leave", JOB_ERROR_NONE,
          "interrupted by a restart" },
        { "interrupted", "erase", true, 60, true, "interrupted", "erase", JOB_ERROR_NONE, NULL },
        /* a day and more ago: expired, never written over a newer image */
        { "interrupted", "write", true, 2 * 86400.0, true, "failed", "none", JOB_ERROR_INTERRUPTED,
          "expired" },
        /* retry_interrupted = no: failed at once */
        { "flashing", "write", true, 0, false, "failed", "none", JOB_ERROR_INTERRUPTED,
          "retry_interrupted = no" },
        /* a waiting-for-device after a flash counts as flashing */
        { "waiting-for-device", "none", true, 0, true, "interrupted", "none", JOB_ERROR_NONE, NULL },
        /* finished jobs stay as they were */
        { "done", "none", false, 0, true, "done", "none", JOB_ERROR_NONE, NULL },
        { "superseded", "none", false, 0, true, "superseded", "none", JOB_ERROR_NONE, NULL },
};

static void test_recovery(void)
{
        for (size_t i = 0; i < ELEMENTSOF(recovery_table); i++) {
                typeof(recovery_table[0]) *t = &recovery_table[i];
                Fixture f;
                char disk[32];
                Job *j;

                fixture_start(
                        &f,
                        json_pack(
                                "[o]",
                                job_state_json(1, t->state, t->phase, "1-1.3", t->was_flashing,
                                               t->interrupted_ago > 0 ? now_sec() - t->interrupted_ago : 0)),
                        t->retry, 86400ull * 1000000ull);
                j = job_queue_find(f.q, 1);
                CHECK(j != NULL);
                if (!j) {
                        fixture_stop(&f);
                        continue;
                }
                if (!streq(job_state_to_string(j->state), t->want_state))
                        fprintf(stderr, "recovery row %zu:\n", i);
                CHECK_STR(job_state_to_string(j->state), t->want_state);
                CHECK_STR(job_phase_to_string(j->phase), t->want_phase);
                CHECK_INT(j->error, t->want_error);
                if (t->want_message)
                        CHECK(j->message && strstr(j->message, t->want_message));
                if (streq(t->want_state, "interrupted"))
                        CHECK(j->interrupted_at > 0);
                /* what was recovered is on disk before anything runs */
                disk_state(&f, 1, disk, sizeof(disk));
                CHECK_STR(disk, t->want_state);
                /* and announced at the end of the first loop turn, once */
                run_idle(&f);
                if (!streq(t->state, t->want_state)) {
                        CHECK_INT(f.seen.n, 1);
                        CHECK(seen_index(&f.seen, 1, t->want_state) == 0);
                } else
                        CHECK_INT(f.seen.n, 0);
                fixture_stop(&f);
        }
}

/* A job stopped before flashing began starts over: queued, then started. */
static void test_recovery_starts_over(void)
{
        Fixture f;
        Job *j;

        fixture_start(&f, json_pack("[o]", job_state_json(1, "rebooting", "none", "1-1.3", false, 0)), true,
                      0);
        j = job_queue_find(f.q, 1);
        CHECK(j && job_log_has(j, "flashd restarted before flashing began; starting over"));
        CHECK(j && j->attempts == 1); /* the queue started it again */
        CHECK(j && j->state != JOB_STATE_INTERRUPTED);
        fixture_stop(&f);
}

/* ---- one save, one notification per job, per loop turn ---- */

static void test_one_save_per_turn(void)
{
        Fixture f;
        double t = now_sec() - 10;
        unsigned saves;

        fixture_start(&f,
                      json_pack("[o, o, o]", job_state_json(1, "interrupted", "write", "1-1.1", true, t),
                                job_state_json(2, "interrupted", "write", "1-1.2", true, t),
                                job_state_json(3, "interrupted", "write", "1-1.3", true, t)),
                      true, 86400ull * 1000000ull);
        run_idle(&f);
        saves = f.q->n_saves;
        f.seen.n = 0;

        for (uint64_t id = 1; id <= 3; id++)
                CHECK_INT(job_queue_cancel(f.q, id), 0);
        /* nothing written or sent synchronously */
        CHECK_INT(f.q->n_saves, saves);
        CHECK_INT(f.seen.n, 0);
        CHECK_INT(job_queue_cancel(f.q, 2), -EALREADY);

        run_idle(&f);
        CHECK_INT(f.q->n_saves, saves + 1);
        CHECK_INT(f.seen.n, 3);
        for (unsigned i = 0; i < f.seen.n && i < 3; i++) {
                CHECK_INT(f.seen.id[i], i + 1); /* in the order of the changes */
                CHECK_STR(f.seen.state[i], "cancelled");
                CHECK(f.seen.on_disk[i]); /* saved before announced */
        }
        /* a quiet turn does nothing */
        run_idle(&f);
        CHECK_INT(f.q->n_saves, saves + 1);
        CHECK_INT(f.seen.n, 3);
        fixture_stop(&f);
}

/* Two states in one turn: both announced, in order, one save. Changes
 * that are no state (progress) are merged. */
static void test_every_state_announced(void)
{
        Fixture f;
        unsigned saves;
        Job *a, *b;

        fixture_start(&f,
                      json_pack("[o, o]",
                                job_state_json(1, "interrupted", "write", "1-1.1", true, now_sec()),
                                job_state_json(2, "interrupted", "write", "1-1.2", true, now_sec())),
                      true, 0);
        run_idle(&f);
        saves = f.q->n_saves;
        f.seen.n = 0;
        a = job_queue_find(f.q, 1);
        b = job_queue_find(f.q, 2);

        job_enter_state(a, JOB_STATE_WAITING_FOR_DEVICE);
        job_fail(a, JOB_ERROR_BOOTLOADER_TIMEOUT, "gave up");
        job_mark_dirty(b, JOB_DIRTY_NOTIFY);
        b->bytes_done = 10;
        job_mark_dirty(b, JOB_DIRTY_NOTIFY);
        run_idle(&f);

        CHECK_INT(f.q->n_saves, saves + 1);
        CHECK_INT(f.seen.n, 3);
        CHECK_INT(f.seen.id[0], 1);
        CHECK_STR(f.seen.state[0], "waiting-for-device");
        CHECK_INT(f.seen.id[1], 1);
        CHECK_STR(f.seen.state[1], "failed");
        CHECK(f.seen.on_disk[1]);
        CHECK_INT(f.seen.id[2], 2);
        CHECK_STR(f.seen.state[2], "interrupted");
        /* the log says each step */
        CHECK(job_log_has(a, "interrupted -> waiting-for-device"));
        CHECK(job_log_has(a, "waiting-for-device -> failed"));
        fixture_stop(&f);
}

/* A job a notification's callback changes is announced in the same pass,
 * and saved before that. */
static void test_callback_changes_saved_first(void)
{
        Fixture f;
        double t = now_sec();

        fixture_start(&f,
                      json_pack("[o, o]", job_state_json(1, "interrupted", "write", "1-1.1", true, t),
                                job_state_json(2, "interrupted", "write", "1-1.2", true, t)),
                      true, 0);
        run_idle(&f);
        f.seen.n = 0;
        f.cancel_when = 1;
        f.cancel_what = 2;
        CHECK_INT(job_queue_cancel(f.q, 1), 0);
        run_idle(&f);
        CHECK_INT(f.seen.n, 2);
        CHECK_INT(f.seen.id[1], 2);
        CHECK_STR(f.seen.state[1], "cancelled");
        CHECK(f.seen.on_disk[0] && f.seen.on_disk[1]);
        fixture_stop(&f);
}

/* A job that ends and is dropped from the history at once (history_max 0)
 * is still announced, and freed after that. */
static void test_pruned_still_announced(void)
{
        Fixture f;

        history_max = 0;
        fixture_start(&f,
                      json_pack("[o]", job_state_json(7, "interrupted", "write", "1-1.3", true, now_sec())),
                      true, 0);
        history_max = 100;
        run_idle(&f);
        f.seen.n = 0;
        CHECK_INT(job_queue_cancel(f.q, 7), 0);
        run_idle(&f);
        CHECK(job_queue_find(f.q, 7) == NULL);
        CHECK_INT(f.seen.n, 1);
        CHECK_INT(f.seen.id[0], 7);
        CHECK_STR(f.seen.state[0], "cancelled");
        fixture_stop(&f);
}

/* When the loop exits, the last changes are saved and announced, and no
 * job is started any more. */
static void test_exit_saves_starts_nothing(void)
{
        Fixture f;
        char disk[32];
        Job *j;

        fixture_start(&f,
                      json_pack("[o]", job_state_json(1, "interrupted", "write", "1-1.3", true, now_sec())),
                      true, 0);
        run_idle(&f);
        f.seen.n = 0;
        j = job_queue_find(f.q, 1);
        job_log(j, "board is in its bootloader again: retrying from the start");
        job_enter_state(j, JOB_STATE_QUEUED);
        CHECK_INT(sd_event_exit(f.event, 0), 0);
        run_idle(&f);
        CHECK_INT(j->attempts, 0);
        disk_state(&f, 1, disk, sizeof(disk));
        CHECK_STR(disk, "queued");
        CHECK_INT(f.seen.n, 1);
        fixture_stop(&f);
}

/* ---- expiry ---- */

static void test_expiry(void)
{
        Fixture f;
        Job *j;

        /* expires 0.3 s after start (interrupted_expire_sec = 1) */
        fixture_start(
                &f,
                json_pack("[o]", job_state_json(1, "interrupted", "write", "1-1.3", true, now_sec() - 0.7)),
                true, 1000000ull);
        j = job_queue_find(f.q, 1);
        CHECK(j && j->state == JOB_STATE_INTERRUPTED);
        CHECK(job_queue_port_busy(f.q, "1-1.3"));
        run_until_final(&f, 1, 5.0);
        j = job_queue_find(f.q, 1);
        CHECK(j && j->state == JOB_STATE_FAILED);
        CHECK(j && j->error == JOB_ERROR_INTERRUPTED);
        CHECK(j && j->message && strstr(j->message, "expired"));
        CHECK(!job_queue_port_busy(f.q, "1-1.3"));
        CHECK(seen_index(&f.seen, 1, "failed") >= 0);
        CHECK(f.seen.n > 0 && f.seen.on_disk[f.seen.n - 1]);
        fixture_stop(&f);
}

/* ---- submission and supersede ---- */

#define CAN_A "nocan9:0123456789ab"
#define CAN_B "nocan9:0123456789ac"

static void test_submit_supersedes(void)
{
        _cleanup_free_ char *message = NULL;
        uint8_t data[256] = {};
        Fixture f;
        Job *job = NULL, *old;
        JobError err = JOB_ERROR_NONE;
        char disk[32];
        double t = now_sec() - 10;

        fixture_start(&f,
                      json_pack("[o, o]", job_state_json(1, "interrupted", "write", CAN_A, true, t),
                                job_state_json(2, "interrupted", "write", CAN_B, true, t)),
                      true, 86400ull * 1000000ull);
        run_idle(&f);
        f.seen.n = 0;

        JobRequest req = { .target = CAN_A,
                           .data = data,
                           .size = sizeof(data),
                           .verify = true,
                           .requested_by = { .uid = 0, .pid = 1, .name = (char *)"test" } };
        CHECK_INT(job_queue_submit(f.q, &req, &job, &err, &message), 0);
        CHECK(job != NULL);
        if (!job) {
                fixture_stop(&f);
                return;
        }
        CHECK_INT(job->id, 3);
        /* on disk, with what it changed, before the submission returns;
         * announced only at the end of the loop turn */
        disk_state(&f, 3, disk, sizeof(disk));
        CHECK_STR(disk, "queued");
        disk_state(&f, 1, disk, sizeof(disk));
        CHECK_STR(disk, "superseded");
        CHECK_INT(f.seen.n, 0);
        CHECK_INT(job->attempts, 1); /* started: its board was free */

        old = job_queue_find(f.q, 1);
        CHECK(old && old->state == JOB_STATE_SUPERSEDED && old->superseded_by == 3);
        CHECK(old && old->message && strstr(old->message, "superseded by job 3"));
        old = job_queue_find(f.q, 2); /* another board's */
        CHECK(old && old->state == JOB_STATE_INTERRUPTED && old->superseded_by == 0);

        /* there is no such CAN interface: the flow fails at once */
        run_until_final(&f, 3, 10.0);
        CHECK(seen_index(&f.seen, 3, "queued") == 0); /* the new job first, as it changed first */
        CHECK(seen_index(&f.seen, 1, "superseded") == 1);
        CHECK(seen_index(&f.seen, 3, "failed") > 1);
        CHECK_INT(job->error, JOB_ERROR_TARGET_NOT_FOUND);
        disk_state(&f, 3, disk, sizeof(disk));
        CHECK_STR(disk, "failed");
        fixture_stop(&f);
}

int main(void)
{
        test_recovery();
        test_recovery_starts_over();
        test_one_save_per_turn();
        test_every_state_announced();
        test_pruned_still_announced();
        test_callback_changes_saved_first();
        test_exit_saves_starts_nothing();
        test_expiry();
        test_submit_supersedes();
        TESTS_EXIT();
}
