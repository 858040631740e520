/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "jobs/job.h"
#include "util/log.h"
#include "util/utf8.h"

static const char *const job_state_table[_JOB_STATE_MAX] = {
        [JOB_STATE_QUEUED] = "queued",
        [JOB_STATE_WAITING_FOR_DEVICE] = "waiting-for-device",
        [JOB_STATE_REBOOTING] = "rebooting",
        [JOB_STATE_FLASHING] = "flashing",
        [JOB_STATE_WAITING_FOR_APP] = "waiting-for-app",
        [JOB_STATE_DONE] = "done",
        [JOB_STATE_FAILED] = "failed",
        [JOB_STATE_CANCELLED] = "cancelled",
        [JOB_STATE_INTERRUPTED] = "interrupted",
        [JOB_STATE_SUPERSEDED] = "superseded",
};

static const char *const job_phase_table[_JOB_PHASE_MAX] = {
        [JOB_PHASE_NONE] = "none",   [JOB_PHASE_READ_BACK] = "read-back", [JOB_PHASE_ERASE] = "erase",
        [JOB_PHASE_WRITE] = "write", [JOB_PHASE_VERIFY] = "verify",       [JOB_PHASE_LEAVE] = "leave",
};

const char *job_state_to_string(JobState s)
{
        return s >= 0 && s < _JOB_STATE_MAX ? job_state_table[s] : NULL;
}

JobState job_state_from_string(const char *s)
{
        return (JobState)string_table_lookup(job_state_table, _JOB_STATE_MAX, s);
}

const char *job_phase_to_string(JobPhase p)
{
        return p >= 0 && p < _JOB_PHASE_MAX ? job_phase_table[p] : NULL;
}

JobPhase job_phase_from_string(const char *s)
{
        return (JobPhase)string_table_lookup(job_phase_table, _JOB_PHASE_MAX, s);
}

bool job_state_is_final(JobState s)
{
        switch (s) {
        case JOB_STATE_DONE:
        case JOB_STATE_FAILED:
        case JOB_STATE_CANCELLED:
        case JOB_STATE_SUPERSEDED:
                return true;
        case JOB_STATE_QUEUED:
        case JOB_STATE_WAITING_FOR_DEVICE:
        case JOB_STATE_REBOOTING:
        case JOB_STATE_FLASHING:
        case JOB_STATE_WAITING_FOR_APP:
        case JOB_STATE_INTERRUPTED:
        case _JOB_STATE_MAX:
        case _JOB_STATE_INVALID:
                break;
        }
        return false;
}

int job_new(Job **ret, uint64_t id)
{
        Job *j = calloc(1, sizeof(Job));

        if (!j)
                return -ENOMEM;
        j->id = id;
        j->state = JOB_STATE_QUEUED;
        j->verify = true;
        j->created = now_usec(CLOCK_REALTIME);
        j->notified_state = _JOB_STATE_INVALID; /* its first state is news */
        j->notified_phase = _JOB_PHASE_INVALID;
        *ret = j;
        return 0;
}

Job *job_free(Job *j)
{
        if (!j)
                return NULL;
        free(j->target);
        free(j->port);
        free(j->board);
        free(j->variant);
        free(j->mcu);
        free(j->device);
        free(j->mode);
        free(j->image.format);
        free(j->board_alternatives);
        free(j->wait_hint);
        free(j->image.name);
        free(j->message);
        free(j->error_message);
        for (size_t i = 0; i < j->n_log; i++)
                free(j->log[i]);
        free(j->log);
        free(j->source);
        free(j->requested_by.name);
        json_decref(j->unsent);
        free(j);
        return NULL;
}

int job_set_string(char **field, const char *value)
{
        char *c = NULL;

        if (value) {
                c = strdup(value);
                if (!c)
                        return -ENOMEM;
        }
        free(*field);
        *field = c;
        return 0;
}

static void job_log_append(Job *j, char *line)
{
        if (j->n_log >= JOB_LOG_MAX) {
                free(j->log[0]);
                memmove(j->log, j->log + 1, (j->n_log - 1) * sizeof(char *));
                j->n_log--;
        }
        if (!j->log) {
                j->log = calloc(JOB_LOG_MAX, sizeof(char *));
                if (!j->log) {
                        free(line);
                        return;
                }
        }
        j->log[j->n_log++] = line;
}

static void job_logv(Job *j, const char *format, va_list ap)
{
        char text[1024], stamp[16];
        char *line = NULL;
        time_t t = time(NULL);
        struct tm tm;

        vsnprintf(text, sizeof(text), format, ap);
        strftime(stamp, sizeof(stamp), "%H:%M:%S", gmtime_r(&t, &tm));
        if (asprintf(&line, "%s %s", stamp, text) < 0)
                return;
        job_log_append(j, line);
        log_info("job %" PRIu64 ": %s", j->id, text);
}

void job_log(Job *j, const char *format, ...)
{
        va_list ap;

        va_start(ap, format);
        job_logv(j, format, ap);
        va_end(ap);
}

bool job_log_has(const Job *j, const char *text)
{
        for (size_t i = 0; i < j->n_log; i++) {
                const char *sp = strchr(j->log[i], ' ');
                if (sp && streq(sp + 1, text))
                        return true;
        }
        return false;
}

void job_mark_dirty(Job *j, JobDirty what)
{
        if (what & JOB_DIRTY_NOTIFY)
                j->unnotified = true;
        if (j->on_dirty)
                j->on_dirty(j, what, j->on_dirty_userdata);
}

/* Changes are announced once per loop turn, but every state and phase a
 * client was not told of yet is kept (API: notify_job_update is sent on
 * every state and phase change): the job as it is now, before it moves on. */
static void job_keep_unsent(Job *j)
{
        json_t *o;

        if (!j->unnotified || (j->state == j->notified_state && j->phase == j->notified_phase))
                return;
        if (!j->unsent && !(j->unsent = json_array()))
                return;
        o = job_to_json(j, false);
        if (o)
                json_array_append_new(j->unsent, o);
        j->notified_state = j->state;
        j->notified_phase = j->phase;
}

json_t *job_take_notification(Job *j)
{
        json_t *earlier = TAKE_PTR(j->unsent);

        j->unnotified = false;
        j->notified_state = j->state;
        j->notified_phase = j->phase;
        return earlier;
}

void job_enter_phase(Job *j, JobPhase p)
{
        if (j->phase == p)
                return;
        job_keep_unsent(j);
        j->phase = p;
}

static bool job_state_before_flashing(JobState s)
{
        return s == JOB_STATE_QUEUED || s == JOB_STATE_REBOOTING || s == JOB_STATE_WAITING_FOR_DEVICE;
}

/* A job that has not begun flashing starts over from queued after a
 * restart, whether jobs.json says queued, rebooting or waiting-for-device
 * (was_flashing is false in all three): moving among them need not be
 * written (an fsync each, on the main loop); every other change must. */
static bool job_change_needs_save(JobState old, JobState s)
{
        return !(job_state_before_flashing(old) && job_state_before_flashing(s));
}

void job_enter_state(Job *j, JobState s)
{
        JobState old = j->state;

        if (old == s)
                return;
        job_keep_unsent(j);
        j->state = s;
        /* an interrupted job keeps the phase it was cut short in: past
         * `leave` its image is complete (see job_queue_on_inventory()) */
        if (s != JOB_STATE_FLASHING && s != JOB_STATE_INTERRUPTED)
                j->phase = JOB_PHASE_NONE;
        if (s == JOB_STATE_INTERRUPTED && j->interrupted_at == 0)
                j->interrupted_at = now_usec(CLOCK_REALTIME);
        else if (s != JOB_STATE_INTERRUPTED)
                j->interrupted_at = 0;
        if (s == JOB_STATE_FLASHING)
                j->was_flashing = true;
        else if (s != JOB_STATE_INTERRUPTED)
                j->was_flashing = false;
        if (job_state_is_final(s) && j->finished == 0)
                j->finished = now_usec(CLOCK_REALTIME);
        job_log(j, "%s -> %s", strna(job_state_to_string(old)), strna(job_state_to_string(s)));
        job_mark_dirty(j, job_change_needs_save(old, s) ? JOB_DIRTY_ALL : JOB_DIRTY_NOTIFY);
}

void job_fail(Job *j, JobError e, const char *format, ...)
{
        char text[1024];
        va_list ap;

        va_start(ap, format);
        vsnprintf(text, sizeof(text), format, ap);
        va_end(ap);

        j->error = e;
        (void)job_set_string(&j->error_message, text);
        (void)job_set_string(&j->message, text);
        job_log(j, "error %s: %s", job_error_to_string(e), text);
        job_enter_state(j, JOB_STATE_FAILED);
}

/* World strings (device names, process names) may be any bytes. */
static json_t *json_string_or_null(const char *s)
{
        return json_string_sanitized(s);
}

/* seconds since the epoch, as the API has them */
static json_t *json_time_or_null(usec_t t)
{
        return t > 0 ? json_real(usec_to_sec(t)) : json_null();
}

static usec_t json_time(json_t *v)
{
        return sec_to_usec(json_number_value(v));
}

/* {"started", "timeout_sec", "hints"} while the job waits for its board. */
static json_t *job_wait_to_json(const Job *j)
{
        json_t *hints;

        if ((j->state != JOB_STATE_WAITING_FOR_DEVICE && j->state != JOB_STATE_WAITING_FOR_APP) ||
            j->wait_started <= 0)
                return json_null();
        hints = json_array();
        for (const char *p = j->wait_hint; hints && p && *p;) {
                const char *end = strstr(p, "; ");
                size_t n = end ? (size_t)(end - p) : strlen(p);
                json_array_append_new(hints, json_stringn(p, n));
                p = end ? end + 2 : p + n;
        }
        return json_pack("{s:f, s:f, s:o}", "started", usec_to_sec(j->wait_started), "timeout_sec",
                         usec_to_sec(j->wait_timeout_usec), "hints", hints ? hints : json_array());
}

json_t *job_to_json(const Job *j, bool with_log)
{
        json_t *o, *image, *error, *req, *force;

        image = json_pack("{s:s, s:I, s:I, s:o, s:I, s:b, s:o}", "sha256", j->image.sha256, "size",
                          (json_int_t)j->image.size, "payload_size", (json_int_t)j->image.payload_size,
                          "format", json_string_or_null(j->image.format), "address",
                          (json_int_t)j->image.address, "address_explicit", j->image.has_address, "name",
                          json_string_or_null(j->image.name));
        if (j->error != JOB_ERROR_NONE)
                error = json_pack("{s:i, s:s, s:o, s:s}", "code", (int)j->error, "name",
                                  job_error_to_string(j->error), "message",
                                  json_string_or_null(strempty(j->error_message)), "advice",
                                  job_error_advice(j->error));
        else
                error = json_null();
        req = json_pack("{s:i, s:i, s:o}", "uid", (int)j->requested_by.uid, "pid", (int)j->requested_by.pid,
                        "name", json_string_or_null(j->requested_by.name));
        force = json_array();
        for (int c = 0; c < _IMAGE_CHECK_MAX; c++)
                if (j->force & (1u << c))
                        json_array_append_new(force, json_string(image_check_to_string(c)));

        o = json_pack(
                "{s:I, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:b, s:b, s:o, s:I, s:I, s:f, "
                "s:o, s:o, s:f, s:o, s:o, s:o, s:o, s:i}",
                "id", (json_int_t)j->id, "state", job_state_to_string(j->state), "phase",
                job_phase_to_string(j->phase), "target", json_string_or_null(j->target), "port",
                json_string_or_null(j->port), "board", json_string_or_null(j->board), "variant",
                json_string_or_null(j->variant), "mcu", json_string_or_null(j->mcu), "device",
                json_string_or_null(j->device), "mode", json_string_or_null(j->mode), "image", image,
                "verify", j->verify, "mass_erase", j->mass_erase, "force", force, "bytes_done",
                (json_int_t)j->bytes_done, "bytes_total", (json_int_t)j->bytes_total, "rate", j->rate,
                "message", json_string_or_null(j->message), "error", error, "created",
                usec_to_sec(j->created), "started", json_time_or_null(j->started), "finished",
                json_time_or_null(j->finished), "source",
                json_string_or_null(j->source ? j->source : "manual"), "requested_by", req, "attempts",
                (int)j->attempts);
        if (!o)
                return NULL;
        json_object_set_new(o, "superseded_by",
                            j->superseded_by ? json_integer((json_int_t)j->superseded_by) : json_null());
        json_object_set_new(o, "wait", job_wait_to_json(j));
        json_t *alt = json_array();
        for (const char *p = j->board_alternatives; alt && p && *p;) {
                const char *end = strchr(p, '|');
                size_t n = end ? (size_t)(end - p) : strlen(p);
                json_array_append_new(alt, json_stringn(p, n));
                p = end ? end + 1 : p + n;
        }
        json_object_set_new(o, "board_alternatives", alt ? alt : json_array());
        json_object_set_new(o, "result",
                            j->totals.valid
                                    ? json_pack("{s:I, s:I, s:I, s:I}", "sectors_written",
                                                (json_int_t)j->totals.sectors_written, "sectors_unchanged",
                                                (json_int_t)j->totals.sectors_unchanged, "bytes_written",
                                                (json_int_t)j->totals.bytes_written, "bytes_verified",
                                                (json_int_t)j->totals.bytes_verified)
                                    : json_null());
        if (with_log) {
                json_t *log = json_array();
                for (size_t i = 0; i < j->n_log; i++)
                        json_array_append_new(log, json_string_or_null(j->log[i]));
                json_object_set_new(o, "log", log);
        }
        return o;
}

json_t *job_to_state_json(const Job *j)
{
        json_t *o = job_to_json(j, true);

        if (!o)
                return NULL;
        json_object_set_new(o, "was_flashing", json_boolean(j->was_flashing));
        if (j->interrupted_at > 0)
                json_object_set_new(o, "interrupted_at", json_real(usec_to_sec(j->interrupted_at)));
        return o;
}

static int dup_string(json_t *o, const char *key, char **field)
{
        json_t *v = json_object_get(o, key);

        if (!v || json_is_null(v))
                return 0;
        if (!json_is_string(v))
                return -EBADMSG;
        return job_set_string(field, json_string_value(v));
}

int job_from_state_json(json_t *o, Job **ret)
{
        _cleanup_(job_freep) Job *j = NULL;
        json_t *v, *image, *error, *req;
        int r;

        if (!json_is_object(o) || !json_is_integer(json_object_get(o, "id")))
                return -EBADMSG;
        r = job_new(&j, (uint64_t)json_integer_value(json_object_get(o, "id")));
        if (r < 0)
                return r;

        j->state = job_state_from_string(json_string_value(json_object_get(o, "state")));
        if (j->state < 0)
                return -EBADMSG;
        j->phase = job_phase_from_string(json_string_value(json_object_get(o, "phase")));
        if (j->phase < 0)
                j->phase = JOB_PHASE_NONE;

        if (dup_string(o, "target", &j->target) < 0 || dup_string(o, "port", &j->port) < 0 ||
            dup_string(o, "board", &j->board) < 0 || dup_string(o, "variant", &j->variant) < 0 ||
            dup_string(o, "mcu", &j->mcu) < 0 || dup_string(o, "device", &j->device) < 0 ||
            dup_string(o, "mode", &j->mode) < 0 || dup_string(o, "message", &j->message) < 0 ||
            dup_string(o, "source", &j->source) < 0)
                return -EBADMSG;
        v = json_object_get(o, "board_alternatives");
        if (json_is_array(v)) {
                size_t i;
                json_t *a;
                json_array_foreach (v, i, a) {
                        _cleanup_free_ char *joined = NULL;
                        if (!json_is_string(a))
                                continue;
                        if (asprintf(&joined, "%s%s%s", strempty(j->board_alternatives),
                                     j->board_alternatives ? "|" : "", json_string_value(a)) < 0 ||
                            job_set_string(&j->board_alternatives, joined) < 0)
                                return -ENOMEM;
                }
        }

        image = json_object_get(o, "image");
        if (!json_is_object(image))
                return -EBADMSG;
        v = json_object_get(image, "sha256");
        if (!json_is_string(v) || strlen(json_string_value(v)) != 64)
                return -EBADMSG;
        memcpy(j->image.sha256, json_string_value(v), 65);
        j->image.size = (uint64_t)json_integer_value(json_object_get(image, "size"));
        j->image.payload_size = (uint64_t)json_integer_value(json_object_get(image, "payload_size"));
        if (dup_string(image, "format", &j->image.format) < 0 ||
            dup_string(image, "name", &j->image.name) < 0)
                return -EBADMSG;
        j->image.address = (uint32_t)json_integer_value(json_object_get(image, "address"));
        j->image.has_address = json_is_true(json_object_get(image, "address_explicit"));

        j->verify = json_is_true(json_object_get(o, "verify")) || !json_object_get(o, "verify");
        j->mass_erase = json_is_true(json_object_get(o, "mass_erase"));
        v = json_object_get(o, "force");
        if (json_is_array(v)) {
                size_t i;
                json_t *e;
                json_array_foreach (v, i, e) {
                        ImageCheck c = image_check_from_string(json_string_value(e));
                        if (c >= 0)
                                j->force |= 1u << c;
                }
        }
        j->bytes_done = (uint64_t)json_integer_value(json_object_get(o, "bytes_done"));
        j->bytes_total = (uint64_t)json_integer_value(json_object_get(o, "bytes_total"));
        v = json_object_get(o, "result");
        if (json_is_object(v)) {
                j->totals.valid = true;
                j->totals.sectors_written =
                        (uint64_t)json_integer_value(json_object_get(v, "sectors_written"));
                j->totals.sectors_unchanged =
                        (uint64_t)json_integer_value(json_object_get(v, "sectors_unchanged"));
                j->totals.bytes_written = (uint64_t)json_integer_value(json_object_get(v, "bytes_written"));
                j->totals.bytes_verified =
                        (uint64_t)json_integer_value(json_object_get(v, "bytes_verified"));
        }

        error = json_object_get(o, "error");
        if (json_is_object(error)) {
                j->error = (JobError)json_integer_value(json_object_get(error, "code"));
                if (j->error < 0 || j->error >= _JOB_ERROR_MAX)
                        j->error = JOB_ERROR_INTERNAL;
                if (dup_string(error, "message", &j->error_message) < 0)
                        return -EBADMSG;
        }
        j->created = json_time(json_object_get(o, "created"));
        j->started = json_time(json_object_get(o, "started"));
        j->finished = json_time(json_object_get(o, "finished"));

        v = json_object_get(o, "log");
        if (json_is_array(v)) {
                size_t i;
                json_t *e;
                json_array_foreach (v, i, e) {
                        char *line;
                        if (!json_is_string(e))
                                continue;
                        line = strdup(json_string_value(e));
                        if (!line)
                                return -ENOMEM;
                        job_log_append(j, line);
                }
        }
        req = json_object_get(o, "requested_by");
        if (json_is_object(req)) {
                j->requested_by.uid = (uid_t)json_integer_value(json_object_get(req, "uid"));
                j->requested_by.pid = (pid_t)json_integer_value(json_object_get(req, "pid"));
                if (dup_string(req, "name", &j->requested_by.name) < 0)
                        return -EBADMSG;
        }
        j->attempts = (unsigned)json_integer_value(json_object_get(o, "attempts"));
        j->was_flashing = json_is_true(json_object_get(o, "was_flashing"));
        j->interrupted_at = json_time(json_object_get(o, "interrupted_at"));
        v = json_object_get(o, "superseded_by");
        if (json_is_integer(v) && json_integer_value(v) > 0)
                j->superseded_by = (uint64_t)json_integer_value(v);

        *ret = TAKE_PTR(j);
        return 0;
}
