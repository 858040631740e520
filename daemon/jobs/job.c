/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "jobs/job.h"
#include "util/log.h"

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

double job_now(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int job_new(Job **ret, uint64_t id)
{
        Job *j = calloc(1, sizeof(Job));

        if (!j)
                return -ENOMEM;
        j->id = id;
        j->state = JOB_STATE_QUEUED;
        j->verify = true;
        j->created = job_now();
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
        free(j->message);
        free(j->error_message);
        for (size_t i = 0; i < j->n_log; i++)
                free(j->log[i]);
        free(j->log);
        free(j->source);
        free(j->requested_by.name);
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

void job_enter_state(Job *j, JobState s)
{
        JobState old = j->state;

        if (old == s)
                return;
        j->state = s;
        if (s != JOB_STATE_FLASHING)
                j->phase = JOB_PHASE_NONE;
        if (s == JOB_STATE_FLASHING)
                j->was_flashing = true;
        else if (s != JOB_STATE_INTERRUPTED)
                j->was_flashing = false;
        if (job_state_is_final(s) && j->finished == 0)
                j->finished = job_now();
        job_log(j, "%s -> %s", job_state_to_string(old), job_state_to_string(s));
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

static json_t *json_string_or_null(const char *s)
{
        return s ? json_string(s) : json_null();
}

static json_t *json_time_or_null(double t)
{
        return t > 0 ? json_real(t) : json_null();
}

json_t *job_to_json(const Job *j, bool with_log)
{
        json_t *o, *image, *error, *req, *force;

        image = json_pack("{s:s, s:I, s:o, s:I, s:b}", "sha256", j->image.sha256, "size",
                          (json_int_t)j->image.size, "format", json_string_or_null(j->image.format),
                          "address", (json_int_t)j->image.address, "address_explicit", j->image.has_address);
        if (image && j->image.data_size > 0)
                json_object_set_new(image, "data_size", json_integer((json_int_t)j->image.data_size));
        if (j->error != JOB_ERROR_NONE)
                error = json_pack("{s:i, s:s, s:s, s:s}", "code", (int)j->error, "name",
                                  job_error_to_string(j->error), "message", strempty(j->error_message),
                                  "advice", job_error_advice(j->error));
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
                "message", json_string_or_null(j->message), "error", error, "created", j->created, "started",
                json_time_or_null(j->started), "finished", json_time_or_null(j->finished), "source",
                json_string(j->source ? j->source : "manual"), "requested_by", req, "attempts",
                (int)j->attempts);
        if (!o)
                return NULL;
        if (with_log) {
                json_t *log = json_array();
                for (size_t i = 0; i < j->n_log; i++)
                        json_array_append_new(log, json_string(j->log[i]));
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

        image = json_object_get(o, "image");
        if (!json_is_object(image))
                return -EBADMSG;
        v = json_object_get(image, "sha256");
        if (!json_is_string(v) || strlen(json_string_value(v)) != 64)
                return -EBADMSG;
        memcpy(j->image.sha256, json_string_value(v), 65);
        j->image.size = (uint64_t)json_integer_value(json_object_get(image, "size"));
        v = json_object_get(image, "data_size");
        j->image.data_size =
                json_is_integer(v) && json_integer_value(v) > 0 ? (uint64_t)json_integer_value(v) : 0;
        if (dup_string(image, "format", &j->image.format) < 0)
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

        error = json_object_get(o, "error");
        if (json_is_object(error)) {
                j->error = (JobError)json_integer_value(json_object_get(error, "code"));
                if (j->error < 0 || j->error >= _JOB_ERROR_MAX)
                        j->error = JOB_ERROR_INTERNAL;
                if (dup_string(error, "message", &j->error_message) < 0)
                        return -EBADMSG;
        }
        j->created = json_number_value(json_object_get(o, "created"));
        j->started = json_number_value(json_object_get(o, "started"));
        j->finished = json_number_value(json_object_get(o, "finished"));

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

        *ret = TAKE_PTR(j);
        return 0;
}
