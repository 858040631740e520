/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <inttypes.h>
#include <unistd.h>

#include "codec/image-check.h"
#include "jobs/job-queue.h"
#include "jobs/job-units.h"
#include "util/log.h"
#include "util/macros.h"
#include "manager.h"
#include "server/rpc.h"
#include "update/identify-service.h"
#include "update/klipper-tree.h"
#include "update/profile-store.h"
#include "update/update-run.h"
#include "update/update-status.h"
#include "util/time-util.h"

#define BUILD_TIMEOUT_USEC (30ULL * 60ULL * 1000000ULL)
#define UNITS_TIMEOUT_USEC (90ULL * 1000000ULL)
#define VERSION_WAIT_USEC  (15ULL * 1000000ULL)
/* How long the CAN nodes flashed get to answer identify before klippy is
 * started again (it gives them node ids, and then they no longer answer). */
#define CAN_READ_WAIT_USEC (10ULL * 1000000ULL)
#define POLL_INTERVAL_USEC (100ULL * 1000ULL)
#define LOG_TAIL_LINES     15
#define IMAGE_MAX          (16U * 1024U * 1024U)

/* ---- the plan ---- */

#define RANK_LAST 3

static int transport_rank(const char *t, bool bridge)
{
        /* CAN nodes first: a node behind a USB-CAN bridge must be done while
         * the bridge still runs the old Klipper that carries the bus; the
         * bridge board itself last, for the same reason */
        if (bridge)
                return RANK_LAST;
        if (streq(t ?: "", "can"))
                return 0;
        if (streq(t ?: "", "uart"))
                return 1;
        return 2;
}

static bool name_in(json_t *names, const char *name)
{
        size_t i;
        json_t *v;
        json_array_foreach (names, i, v)
                if (json_is_string(v) && streq(json_string_value(v), name))
                        return true;
        return false;
}

int update_plan_compute(Manager *m, json_t *names, bool all, json_t **ret, char **ret_error)
{
        json_auto_t *status = NULL, *steps = json_array(), *order = json_array(), *units = json_array();
        json_t *mcus, *s, *v;
        size_t i;
        int r;

        if (!steps || !order || !units)
                return -ENOMEM;
        r = update_status_compute(m, &status);
        if (r < 0)
                return r;
        mcus = json_object_get(status, "mcus");
        json_array_foreach (names, i, v) {
                bool found = false;
                size_t k;
                json_array_foreach (mcus, k, s)
                        if (streq(json_string_value(json_object_get(s, "name")), json_string_value(v) ?: ""))
                                found = true;
                if (!found) {
                        if (asprintf(ret_error, "'%s' is no MCU of printer.cfg (flashctl status lists them)",
                                     json_string_value(v) ?: "?") < 0)
                                *ret_error = NULL;
                        return -ENOENT;
                }
        }
        for (int rank = 0; rank <= RANK_LAST; rank++)
                json_array_foreach (mcus, i, s) {
                        const char *name = json_string_value(json_object_get(s, "name"));
                        const char *state = json_string_value(json_object_get(s, "state"));
                        const char *transport = json_string_value(json_object_get(s, "transport"));
                        const char *profile = json_string_value(json_object_get(s, "profile"));
                        const char *port = json_string_value(json_object_get(s, "port"));
                        const char *bridge_port = json_string_value(json_object_get(s, "bridge_port"));
                        bool can = streq(transport ?: "", "can");
                        bool named = name_in(names, name);
                        _cleanup_free_ char *reason = NULL;
                        const InventoryEntry *e = NULL;

                        if (transport_rank(transport, bridge_port) != rank)
                                continue;
                        if (!named && !(all && streq(state, "stale"))) {
                                if (all)
                                        reason = strdup(streq(state, "current")
                                                                ? "already runs the host version"
                                                                : json_string_value(json_object_get(s, "reason")) ?: "unknown");
                                else
                                        continue;
                        } else if (!json_is_string(json_object_get(status, "host_version")))
                                reason = strdup(json_string_value(json_object_get(status, "host_error"))
                                                        ?: "no host version");
                        else if (!profile) {
                                if (asprintf(&reason,
                                             "no build profile for MCU '%s': flashctl profile add NAME "
                                             "--board BOARD "
                                             "--mcu-name %s --kconfig FILE",
                                             name, name) < 0)
                                        reason = NULL;
                        } else if (!port || (can ? bridge_port && !inventory_get(m->inventory, bridge_port)
                                                 : inventory_find(m->inventory, port, &e, NULL) < 0 || !e))
                                reason = strdup(json_string_value(json_object_get(s, "reason"))
                                                        ?: "the board is not connected");
                        json_t *step = json_pack(
                                "{s:s,s:O?,s:s?,s:s?,s:s?,s:O?,s:s,s:s?,s:s?}", "name", name, "board",
                                json_object_get(s, "board"), "port", port, "transport", transport, "profile",
                                profile, "running_version", json_object_get(s, "running_version"), "action",
                                reason ? "skip" : "update", "reason", reason, "bridge_port", bridge_port);
                        if (!step || json_array_append_new(steps, step) < 0)
                                return -ENOMEM;
                        if (!reason)
                                json_array_append_new(order, json_string(name));
                }
        for (char **u = m->config->stop_units; u && *u; u++)
                json_array_append_new(units, json_string(*u));
        *ret = json_pack("{s:O,s:O,s:O,s:O,s:O,s:O}", "host_version",
                         json_object_get(status, "host_version"), "host_error",
                         json_object_get(status, "host_error"), "klipper_path",
                         json_object_get(status, "klipper_path"), "steps", steps, "order", order,
                         "stop_units", units);
        return *ret ? 0 : -ENOMEM;
}

/* ---- the run ---- */

typedef enum RunPhase {
        RUN_PHASE_BUILD,
        RUN_PHASE_FLASH,
        RUN_PHASE_RESTART,
        RUN_PHASE_VERIFY,
        RUN_PHASE_DONE,
        _RUN_PHASE_MAX,
        _RUN_PHASE_INVALID = -EINVAL,
} RunPhase;

static const char *run_phase_to_string(RunPhase p)
{
        switch (p) {
        case RUN_PHASE_BUILD:
                return "build";
        case RUN_PHASE_FLASH:
                return "flash";
        case RUN_PHASE_RESTART:
                return "restart";
        case RUN_PHASE_VERIFY:
                return "verify";
        case RUN_PHASE_DONE:
                return "done";
        case _RUN_PHASE_MAX:
        case _RUN_PHASE_INVALID:
                break;
        }
        return NULL;
}

typedef struct RunStep {
        char *name, *port, *board, *profile, *kconfig, *mcu;
        char *bridge_port;                /* a USB-to-CAN bridge board: flashed on this USB port */
        char can_iface[16], can_uuid[13]; /* a CAN MCU ("" otherwise) */
        char *build_dir;
        uint8_t *image;
        size_t image_size;
        const char *result; /* static: built, build-failed, not-touched, flashed, flash-failed */
        char *message;
        uint64_t job;
        bool job_done;
        char *new_version;
} RunStep;

typedef enum MsgType { MSG_LINE, MSG_STEP, MSG_PHASE_END } MsgType;

typedef struct Msg {
        MsgType type;
        size_t step;
        char *text;
} Msg;

struct UpdateRun {
        Manager *manager;
        RpcCall *call;
        RunPhase phase;
        char *host_version;
        char *tree;
        KlipperBuilder builder;
        RunStep *steps;
        size_t n_steps;
        size_t current;
        bool build_failed;
        char **stopped_units;
        char *units_message;
        uint64_t verify_deadline;
        uint64_t can_read_deadline; /* 0: not waiting for the CAN nodes */
        pthread_t thread;
        bool thread_running;
        int pipe[2];
        sd_event_source *io, *timer;
};

static void run_enter_phase(UpdateRun *r, RunPhase p)
{
        log_info("update: %s -> %s", run_phase_to_string(r->phase), run_phase_to_string(p));
        r->phase = p;
}

static void post(UpdateRun *r, MsgType type, size_t step, const char *text)
{
        Msg *msg = calloc(1, sizeof(*msg));
        if (!msg)
                return;
        msg->type = type;
        msg->step = step;
        msg->text = text ? strdup(text) : NULL;
        if (write(r->pipe[1], &msg, sizeof(msg)) != sizeof(msg)) {
                free(msg->text);
                free(msg);
        }
}

static void notify(UpdateRun *r, const char *mcu, const char *event, const char *text)
{
        json_t *params = json_pack("[{s:s,s:s?,s:s,s:s?}]", "phase", run_phase_to_string(r->phase), "mcu",
                                   mcu, "event", event, "text", text);
        if (params)
                server_broadcast(r->manager->server, "notify_update_progress", params);
        json_decref(params);
}

static int find_image(const char *dir, char **ret)
{
        static const char *const names[] = { "klipper.bin", "klipper.uf2", "klipper.elf.hex" };
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                char *p;
                if (asprintf(&p, "%s/%s", dir, names[i]) < 0)
                        return -ENOMEM;
                if (access(p, R_OK) == 0) {
                        *ret = p;
                        return 0;
                }
                free(p);
        }
        return -ENOENT;
}

static int read_all(const char *path, uint8_t **ret, size_t *ret_size)
{
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        struct stat st;
        uint8_t *buf;

        if (fd < 0 || fstat(fd, &st) < 0)
                return -errno;
        if (st.st_size <= 0 || st.st_size > IMAGE_MAX)
                return -EFBIG;
        buf = malloc(st.st_size);
        if (!buf)
                return -ENOMEM;
        if (read(fd, buf, st.st_size) != st.st_size) {
                free(buf);
                return -EIO;
        }
        *ret = buf;
        *ret_size = st.st_size;
        return 0;
}

/* Worker: one build; returns 0 or fills step->message. */
static int build_one(UpdateRun *r, size_t idx)
{
        RunStep *st = &r->steps[idx];
        char tmpl[] = "/var/tmp/flashd-build-XXXXXX";
        _cleanup_free_ char *cfg = NULL, *kconfig_arg = NULL, *out_arg = NULL, *jobs = NULL, *image = NULL;
        _cleanup_free_ uint8_t *text = NULL;
        char tail[LOG_TAIL_LINES][256] = {};
        size_t n_lines = 0, text_size = 0;
        int pipefd[2], k;
        pid_t pid;
        FILE *f;

        if (!mkdtemp(tmpl))
                return asprintf(&st->message, "cannot make a build directory: %m") < 0 ? -ENOMEM : -EIO;
        st->build_dir = strdup(tmpl);
        /* the builder owns its build directory and its copy of the .config
         * (Klipper's make may rewrite KCONFIG_CONFIG) */
        if (!st->build_dir || asprintf(&cfg, "%s/klipper.config", tmpl) < 0)
                return -ENOMEM;
        k = read_all(st->kconfig, &text, &text_size);
        if (k < 0)
                return asprintf(&st->message, "cannot read the profile's .config %s: %s", st->kconfig,
                                strerror(-k)) < 0
                               ? -ENOMEM
                               : k;
        f = fopen(cfg, "we");
        if (!f || fwrite(text, 1, text_size, f) != text_size) {
                if (f)
                        fclose(f);
                return asprintf(&st->message, "cannot write %s: %m", cfg) < 0 ? -ENOMEM : -EIO;
        }
        fclose(f);
        if (chmod(tmpl, 0755) < 0 || chown(tmpl, r->builder.uid, r->builder.gid) < 0 ||
            chown(cfg, r->builder.uid, r->builder.gid) < 0)
                return asprintf(&st->message, "cannot give %s to %s: %m", tmpl, r->builder.name) < 0
                               ? -ENOMEM
                               : -EIO;

        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        if (asprintf(&kconfig_arg, "KCONFIG_CONFIG=%s", cfg) < 0 ||
            asprintf(&out_arg, "OUT=%s/", tmpl) < 0 || asprintf(&jobs, "-j%ld", ncpu > 0 ? ncpu : 1) < 0)
                return -ENOMEM;
        char *argv[] = { "make", "-C", r->tree, kconfig_arg, out_arg, jobs, NULL };
        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return -errno;
        k = klipper_builder_spawn(&r->builder, NULL, argv, pipefd[1], &pid);
        close(pipefd[1]);
        if (k < 0) {
                close(pipefd[0]);
                return asprintf(&st->message, "cannot start make: %s", strerror(-k)) < 0 ? -ENOMEM : k;
        }
        /* stream the output line by line */
        f = fdopen(pipefd[0], "re");
        if (f) {
                char *line = NULL;
                size_t cap = 0;
                ssize_t n;
                while ((n = getline(&line, &cap, f)) > 0) {
                        line[strcspn(line, "\n")] = '\0';
                        snprintf(tail[n_lines % LOG_TAIL_LINES], sizeof(tail[0]), "%s", line);
                        n_lines++;
                        post(r, MSG_LINE, idx, line);
                }
                free(line);
                fclose(f);
        } else
                close(pipefd[0]);
        k = klipper_builder_wait(pid, BUILD_TIMEOUT_USEC);
        if (k != 0) {
                /* the error with the last lines, for a person */
                _cleanup_free_ char *t = strdup("");
                for (size_t i = n_lines > LOG_TAIL_LINES ? n_lines - LOG_TAIL_LINES : 0; t && i < n_lines;
                     i++) {
                        char *n2;
                        if (asprintf(&n2, "%s\n  %s", t, tail[i % LOG_TAIL_LINES]) < 0)
                                break;
                        free(t);
                        t = n2;
                }
                if (k < 0)
                        k = asprintf(&st->message, "make in %s for %s did not finish: %s%s", r->tree,
                                     st->profile, strerror(-k), strempty(t));
                else
                        k = asprintf(&st->message,
                                     "make in %s for profile %s failed (exit %d); the last lines:%s",
                                     r->tree, st->profile, k, strempty(t));
                return k < 0 ? -ENOMEM : -EIO;
        }
        k = find_image(tmpl, &image);
        if (k < 0)
                return asprintf(&st->message,
                                "make succeeded but left no klipper.bin, klipper.uf2 or klipper.elf.hex in "
                                "%s",
                                tmpl) < 0
                               ? -ENOMEM
                               : k;
        k = read_all(image, &st->image, &st->image_size);
        if (k < 0)
                return asprintf(&st->message, "cannot read %s: %s", image, strerror(-k)) < 0 ? -ENOMEM : k;

        /* the image must be what the plan says: the profile's MCU, the host's version */
        _cleanup_free_ char *json = NULL;
        json_auto_t *dict = NULL;
        const char *mcu, *version;
        k = klipper_dictionary_extract(st->image, st->image_size, &json, NULL);
        dict = k >= 0 ? json_loads(json, 0, NULL) : NULL;
        mcu = json_string_value(json_object_get(json_object_get(dict, "config"), "MCU"));
        version = json_string_value(json_object_get(dict, "version"));
        if (!dict)
                k = asprintf(&st->message, "the built image %s has no Klipper data dictionary: refused",
                             image);
        else if (!mcu || !st->mcu || strcasecmp(mcu, st->mcu) != 0)
                k = asprintf(&st->message, "the built image is for %s, but profile %s is for %s: refused",
                             strna(mcu), st->profile, strna(st->mcu));
        else if (!version || !streq(version, r->host_version))
                k = asprintf(
                        &st->message,
                        "the built image says Klipper %s, but the tree is at %s (did it change during the "
                        "build?): refused",
                        strna(version), r->host_version);
        else
                return 0;
        return k < 0 ? -ENOMEM : -EMEDIUMTYPE;
}

static void *build_thread(void *userdata)
{
        UpdateRun *r = userdata;
        bool failed = false;

        for (size_t i = 0; i < r->n_steps; i++) {
                post(r, MSG_STEP, i, "building");
                int k = build_one(r, i);
                if (k < 0 && !r->steps[i].message)
                        (void)asprintf(&r->steps[i].message, "build failed: %s", strerror(-k));
                post(r, MSG_STEP, i, k < 0 ? "build-failed" : "built");
                if (k < 0)
                        failed = true;
        }
        /* nothing is touched after a failed build; else pause klippy once for all boards */
        if (!failed && r->manager->config->stop_units) {
                int k = job_units_stop(r->manager->config->stop_units, UNITS_TIMEOUT_USEC, &r->stopped_units,
                                       &r->units_message);
                if (k < 0)
                        failed = true;
        }
        post(r, MSG_PHASE_END, 0, failed ? "failed" : "ok");
        return NULL;
}

static void *restart_thread(void *userdata)
{
        UpdateRun *r = userdata;

        if (r->stopped_units)
                (void)job_units_start(r->stopped_units, UNITS_TIMEOUT_USEC, &r->units_message);
        post(r, MSG_PHASE_END, 0, "ok");
        return NULL;
}

static void run_finish(UpdateRun *r)
{
        json_auto_t *steps = json_array();
        bool ok = true;

        run_enter_phase(r, RUN_PHASE_DONE);
        for (size_t i = 0; i < r->n_steps; i++) {
                RunStep *st = &r->steps[i];
                bool current = st->new_version && streq(st->new_version, r->host_version);
                if (!current)
                        ok = false;
                json_array_append_new(steps,
                                      json_pack("{s:s,s:s?,s:s?,s:s?,s:s,s:s?,s:o?,s:s?,s:b}", "name",
                                                st->name, "port", st->port, "board", st->board, "profile",
                                                st->profile, "result", st->result, "message", st->message,
                                                "job", st->job ? json_integer((json_int_t)st->job) : NULL,
                                                "new_version", st->new_version, "current", current));
        }
        notify(r, NULL, ok ? "done" : "failed", NULL);
        if (r->call) {
                rpc_call_reply(r->call, json_pack("{s:s,s:b,s:o,s:s?}", "host_version", r->host_version,
                                                  "ok", ok && !r->build_failed, "steps", json_incref(steps),
                                                  "units_message", r->units_message));
                r->call = rpc_call_unref(r->call);
        }
        r->timer = sd_event_source_disable_unref(r->timer);
        /* free later, from the manager or the next run: we are inside our own callbacks */
}

static int run_submit_next(UpdateRun *r);

static void thread_join(UpdateRun *r)
{
        if (r->thread_running) {
                pthread_join(r->thread, NULL);
                r->thread_running = false;
        }
}

static int start_thread(UpdateRun *r, void *(*fn)(void *))
{
        int k = -pthread_create(&r->thread, NULL, fn, r);
        if (k == 0)
                r->thread_running = true;
        return k;
}

/* Ask a flashed CAN node what it runs now (once per call at most one
 * identify is under way); true once its version is known. */
static bool can_step_read(UpdateRun *r, RunStep *st)
{
        const char *v = NULL, *mcu, *src;
        bool asking;

        if (!r->manager->identify)
                return false;
        (void)identify_service_refresh_can(r->manager->identify, st->can_iface, st->can_uuid,
                                           st->bridge_port);
        (void)identify_service_get_can(r->manager->identify, st->can_iface, st->can_uuid, &v, &mcu, &src,
                                       &asking);
        if (!v)
                return false;
        free(st->new_version);
        st->new_version = strdup(v);
        return true;
}

static void run_restart(UpdateRun *r)
{
        r->can_read_deadline = 0;
        run_enter_phase(r, RUN_PHASE_RESTART);
        if (start_thread(r, restart_thread) < 0) {
                run_enter_phase(r, RUN_PHASE_VERIFY);
                r->verify_deadline = now_usec(CLOCK_MONOTONIC) + VERSION_WAIT_USEC;
        }
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
        UpdateRun *r = userdata;
        JobQueue *q = job_service_get_queue(r->manager->jobs);

        if (r->phase == RUN_PHASE_FLASH && r->current < r->n_steps) {
                RunStep *st = &r->steps[r->current];
                Job *j = job_queue_find(q, st->job);
                if (!j || job_state_is_final(j->state)) {
                        bool done = j && j->state == JOB_STATE_DONE;
                        st->result = done ? "flashed" : "flash-failed";
                        if (!done) {
                                free(st->message);
                                if (asprintf(&st->message, "job %" PRIu64 " %s: %s", st->job,
                                             j ? job_state_to_string(j->state) : "vanished",
                                             j ? strna(j->error_message ?: j->message) : "") < 0)
                                        st->message = NULL;
                        }
                        notify(r, st->name, st->result, st->message);
                        /* a CAN node answers while nobody has given it a node id: ask now */
                        if (done && st->can_iface[0])
                                (void)can_step_read(r, st);
                        r->current++;
                        (void)run_submit_next(r);
                }
        } else if (r->phase == RUN_PHASE_FLASH && r->can_read_deadline) {
                bool all = true;
                for (size_t i = 0; i < r->n_steps; i++) {
                        RunStep *st = &r->steps[i];
                        if (st->can_iface[0] && streq(st->result, "flashed") && !can_step_read(r, st))
                                all = false;
                }
                if (all || now_usec(CLOCK_MONOTONIC) >= r->can_read_deadline)
                        run_restart(r);
        } else if (r->phase == RUN_PHASE_VERIFY) {
                bool waiting = false;
                for (size_t i = 0; i < r->n_steps; i++) {
                        RunStep *st = &r->steps[i];
                        const InventoryEntry *e = inventory_get(r->manager->inventory, st->port);
                        if (!streq(st->result, "flashed"))
                                continue;
                        if (st->can_iface[0])
                                (void)can_step_read(r, st);
                        else if (e && e->mode == DEVICE_MODE_APP &&
                                 e->firmware_generation == e->generation && e->firmware_version) {
                                free(st->new_version);
                                st->new_version = strdup(e->firmware_version);
                        }
                        if (!st->new_version || !streq(st->new_version, r->host_version))
                                waiting = true;
                }
                if (!waiting || now_usec(CLOCK_MONOTONIC) >= r->verify_deadline) {
                        run_finish(r);
                        return 0;
                }
        }
        if (r->phase == RUN_PHASE_DONE)
                return 0;
        return sd_event_source_set_time_relative(s, POLL_INTERVAL_USEC) < 0
                       ? 0
                       : sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}

static int run_submit_next(UpdateRun *r)
{
        JobQueue *q = job_service_get_queue(r->manager->jobs);

        while (r->current < r->n_steps) {
                RunStep *st = &r->steps[r->current];
                _cleanup_free_ char *msg = NULL;
                JobError err = 0;
                Job *j = NULL;
                JobRequest req = {
                        .target = st->bridge_port ?: st->port,
                        .data = st->image,
                        .size = st->image_size,
                        .verify = true,
                        .source = "update",
                        .board = st->board,
                        .requested_by = { .uid = 0, .pid = getpid(), .name = (char *)"flashd update" },
                };
                notify(r, st->name, "flashing", req.target);
                if (st->can_iface[0] && r->manager->identify)
                        identify_service_forget_can(r->manager->identify, st->can_iface, st->can_uuid);
                int k = job_queue_submit(q, &req, &j, &err, &msg);
                if (k < 0 || !j) {
                        st->result = "flash-failed";
                        free(st->message);
                        st->message = TAKE_PTR(msg);
                        if (!st->message)
                                st->message = strdup(strerror(-k));
                        notify(r, st->name, st->result, st->message);
                        r->current++;
                        continue;
                }
                st->job = j->id;
                return 0; /* the timer follows it */
        }
        /* every board had its turn: the CAN nodes say what they run while
         * klippy is away (once it gives them node ids they are silent), then
         * klippy back, then what the other boards say */
        for (size_t i = 0; i < r->n_steps; i++)
                if (r->steps[i].can_iface[0] && streq(r->steps[i].result, "flashed")) {
                        r->can_read_deadline = now_usec(CLOCK_MONOTONIC) + CAN_READ_WAIT_USEC;
                        return 0; /* the timer follows them */
                }
        run_restart(r);
        return 0;
}

static int on_msg(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        UpdateRun *r = userdata;
        Msg *msg;

        while (read(fd, &msg, sizeof(msg)) == sizeof(msg)) {
                RunStep *st = msg->step < r->n_steps ? &r->steps[msg->step] : NULL;
                switch (msg->type) {
                case MSG_LINE:
                        notify(r, st ? st->name : NULL, "log", msg->text);
                        break;
                case MSG_STEP:
                        if (st && !streq(msg->text, "building")) {
                                st->result = streq(msg->text, "built") ? "built" : "build-failed";
                                if (st->message)
                                        log_warning("update: %s: %s", st->name, st->message);
                        }
                        notify(r, st ? st->name : NULL, msg->text, st ? st->message : NULL);
                        break;
                case MSG_PHASE_END:
                        thread_join(r);
                        if (r->phase == RUN_PHASE_BUILD) {
                                if (streq(msg->text, "failed")) {
                                        r->build_failed = true;
                                        for (size_t i = 0; i < r->n_steps; i++)
                                                if (!streq(r->steps[i].result, "build-failed")) {
                                                        r->steps[i].result = "not-touched";
                                                        if (!r->steps[i].message && r->units_message)
                                                                r->steps[i].message =
                                                                        strdup(r->units_message);
                                                }
                                        run_finish(r);
                                } else {
                                        run_enter_phase(r, RUN_PHASE_FLASH);
                                        (void)run_submit_next(r);
                                }
                        } else if (r->phase == RUN_PHASE_RESTART) {
                                run_enter_phase(r, RUN_PHASE_VERIFY);
                                r->verify_deadline = now_usec(CLOCK_MONOTONIC) + VERSION_WAIT_USEC;
                        }
                        break;
                }
                free(msg->text);
                free(msg);
        }
        return 0;
}

UpdateRun *update_run_free(UpdateRun *r)
{
        if (!r)
                return NULL;
        thread_join(r);
        if (r->call) {
                rpc_call_reply_error(r->call, RPC_ERROR_SHUTTING_DOWN, NULL, "flashd is stopping");
                rpc_call_unref(r->call);
        }
        sd_event_source_disable_unref(r->io);
        sd_event_source_disable_unref(r->timer);
        if (r->pipe[0] >= 0) {
                Msg *msg;
                while (read(r->pipe[0], &msg, sizeof(msg)) == sizeof(msg)) {
                        free(msg->text);
                        free(msg);
                }
                close(r->pipe[0]);
        }
        if (r->pipe[1] >= 0)
                close(r->pipe[1]);
        for (size_t i = 0; i < r->n_steps; i++) {
                RunStep *st = &r->steps[i];
                if (st->build_dir) {
                        /* the builder's files: leave nothing behind in /var/tmp */
                        DIR *d = opendir(st->build_dir);
                        if (d) {
                                struct dirent *de;
                                while ((de = readdir(d)))
                                        if (!streq(de->d_name, ".") && !streq(de->d_name, ".."))
                                                (void)unlinkat(dirfd(d), de->d_name, 0);
                                closedir(d);
                        }
                        (void)rmdir(st->build_dir);
                }
                free(st->name);
                free(st->port);
                free(st->bridge_port);
                free(st->board);
                free(st->profile);
                free(st->kconfig);
                free(st->mcu);
                free(st->build_dir);
                free(st->image);
                free(st->message);
                free(st->new_version);
        }
        free(r->steps);
        for (char **u = r->stopped_units; u && *u; u++)
                free(*u);
        free(r->stopped_units);
        free(r->units_message);
        free(r->host_version);
        free(r->tree);
        klipper_builder_done(&r->builder);
        free(r);
        return NULL;
}

static char *dup_str(json_t *o, const char *key)
{
        const char *v = json_string_value(json_object_get(o, key));
        return v ? strdup(v) : NULL;
}

int update_run_start(Manager *m, RpcCall *call, json_t *plan)
{
        _cleanup_free_ char *error = NULL;
        UpdateRun *r;
        json_t *steps = json_object_get(plan, "steps"), *s;
        size_t i;
        int k;

        if (m->update && m->update->phase != RUN_PHASE_DONE)
                return rpc_call_reply_error(call, RPC_ERROR_BUSY, NULL, "an update is running already");
        m->update = update_run_free(m->update);
        if (!m->jobs)
                return rpc_call_reply_error(call, RPC_ERROR_UNSUPPORTED, NULL, "jobs are not running");
        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        r->manager = m;
        r->pipe[0] = r->pipe[1] = -EBADF;
        m->update = r;
        r->host_version = dup_str(plan, "host_version");
        r->tree = dup_str(plan, "klipper_path");
        r->steps = calloc(json_array_size(steps) + 1, sizeof(*r->steps));
        if (!r->steps)
                return -ENOMEM;
        json_array_foreach (steps, i, s) {
                json_auto_t *profile = NULL;
                RunStep *st;
                if (!streq(json_string_value(json_object_get(s, "action")) ?: "", "update"))
                        continue;
                st = &r->steps[r->n_steps++];
                st->name = dup_str(s, "name");
                st->port = dup_str(s, "port");
                st->bridge_port = dup_str(s, "bridge_port");
                st->board = dup_str(s, "board");
                if (streq(json_string_value(json_object_get(s, "transport")) ?: "", "can") && st->port) {
                        /* "IFACE:UUID" */
                        const char *colon = strrchr(st->port, ':');
                        if (colon && (size_t)(colon - st->port) < sizeof(st->can_iface) &&
                            strlen(colon + 1) < sizeof(st->can_uuid)) {
                                memcpy(st->can_iface, st->port, colon - st->port);
                                st->can_iface[colon - st->port] = '\0';
                                snprintf(st->can_uuid, sizeof(st->can_uuid), "%s", colon + 1);
                        }
                }
                st->profile = dup_str(s, "profile");
                st->result = "planned";
                if (st->profile && profile_store_get(m->config->state_dir, st->profile, &profile) >= 0) {
                        st->kconfig = dup_str(profile, "kconfig");
                        st->mcu = dup_str(profile, "mcu");
                }
        }
        if (!r->host_version || !r->tree)
                return rpc_call_reply_error(call, RPC_ERROR_UNSUPPORTED, NULL, "%s",
                                            json_string_value(json_object_get(plan, "host_error"))
                                                    ?: "no Klipper tree");
        k = klipper_builder_resolve(r->tree, m->config->klipper.user, &r->builder, &error);
        if (k < 0)
                return rpc_call_reply_error(call, RPC_ERROR_UNSUPPORTED, NULL, "%s", strna(error));
        if (pipe2(r->pipe, O_CLOEXEC | O_NONBLOCK) < 0)
                return -errno;
        k = sd_event_add_io(m->event, &r->io, r->pipe[0], EPOLLIN, on_msg, r);
        if (k < 0)
                return k;
        k = sd_event_add_time_relative(m->event, &r->timer, CLOCK_MONOTONIC, POLL_INTERVAL_USEC, 0, on_timer,
                                       r);
        if (k < 0)
                return k;
        (void)sd_event_source_set_enabled(r->timer, SD_EVENT_ON);
        r->call = rpc_call_ref(call);
        r->phase = RUN_PHASE_BUILD;
        log_info("update: %zu board(s) to Klipper %s", r->n_steps, r->host_version);
        if (r->n_steps == 0) {
                run_finish(r);
                return 0;
        }
        k = start_thread(r, build_thread);
        if (k < 0) {
                r->call = rpc_call_unref(r->call);
                return k;
        }
        return 0;
}
