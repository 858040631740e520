/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <systemd/sd-bus.h>
#include <time.h>

#include "jobs/job-units.h"
#include "util/macros.h"
#include "util/time-util.h"

#define SYSTEMD_DEST    "org.freedesktop.systemd1"
#define SYSTEMD_PATH    "/org/freedesktop/systemd1"
#define SYSTEMD_MANAGER "org.freedesktop.systemd1.Manager"

static void sd_bus_flush_close_unrefp_local(sd_bus **b)
{
        if (*b)
                sd_bus_flush_close_unref(*b);
}

typedef struct UnitJob {
        const char *path; /* the job object we wait for */
        char *result;     /* JobRemoved's result: "done", "failed", ... */
} UnitJob;

static int on_job_removed(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
        UnitJob *j = userdata;
        const char *path = NULL, *unit = NULL, *result = NULL;
        uint32_t id;

        if (sd_bus_message_read(m, "uoss", &id, &path, &unit, &result) < 0)
                return 0;
        if (j->path && streq(path, j->path) && !j->result)
                j->result = strdup(result);
        return 0;
}

static int fail(char **ret_message, int r, const char *format, ...) __attribute__((format(printf, 3, 4)));
static int fail(char **ret_message, int r, const char *format, ...)
{
        va_list ap;

        if (ret_message) {
                va_start(ap, format);
                if (vasprintf(ret_message, format, ap) < 0)
                        *ret_message = NULL;
                va_end(ap);
        }
        return r;
}

/* StopUnit/StartUnit(unit, "replace") and wait for its job's JobRemoved. */
static int unit_job(sd_bus *bus, const char *method, const char *unit, uint64_t timeout_usec,
                    char **ret_message)
{
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *slot = NULL;
        _cleanup_free_ char *path = NULL;
        UnitJob job = {};
        uint64_t deadline = now_usec(CLOCK_MONOTONIC) + timeout_usec;
        const char *p;
        int r;

        /* Subscribe before the call, so the signal cannot be missed; the reply
         * is read first, queued signals are dispatched after it. */
        r = sd_bus_match_signal(bus, &slot, SYSTEMD_DEST, SYSTEMD_PATH, SYSTEMD_MANAGER, "JobRemoved",
                                on_job_removed, &job);
        if (r < 0)
                return fail(ret_message, r, "cannot watch systemd jobs: %s", strerror(-r));
        r = sd_bus_call_method(bus, SYSTEMD_DEST, SYSTEMD_PATH, SYSTEMD_MANAGER, method, &error, &reply,
                               "ss", unit, "replace");
        if (r < 0)
                return fail(ret_message, r, "%s %s failed: %s", method, unit,
                            error.message ? error.message : strerror(-r));
        r = sd_bus_message_read(reply, "o", &p);
        if (r < 0)
                return fail(ret_message, r, "%s %s: unexpected reply", method, unit);
        path = strdup(p);
        if (!path)
                return -ENOMEM;
        job.path = path;

        while (!job.result) {
                uint64_t now = now_usec(CLOCK_MONOTONIC);
                r = sd_bus_process(bus, NULL);
                if (r < 0)
                        return fail(ret_message, r, "lost the connection to systemd: %s", strerror(-r));
                if (r > 0)
                        continue;
                if (now >= deadline)
                        return fail(ret_message, -ETIMEDOUT, "%s %s did not finish within %" PRIu64 " s",
                                    method, unit, timeout_usec / 1000000);
                r = sd_bus_wait(bus, deadline - now);
                if (r < 0)
                        return fail(ret_message, r, "lost the connection to systemd: %s", strerror(-r));
        }
        if (!streq(job.result, "done")) {
                r = fail(ret_message, -EIO, "%s %s ended with \"%s\" (see systemctl status %s)", method,
                         unit, job.result, unit);
                free(job.result);
                return r;
        }
        free(job.result);
        return 0;
}

static int unit_is_active(sd_bus *bus, const char *unit, bool *ret, char **ret_message)
{
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_free_ char *state = NULL;
        const char *path;
        int r;

        r = sd_bus_call_method(bus, SYSTEMD_DEST, SYSTEMD_PATH, SYSTEMD_MANAGER, "GetUnit", &error, &reply,
                               "s", unit);
        if (r < 0 && sd_bus_error_has_name(&error, "org.freedesktop.systemd1.NoSuchUnit")) {
                *ret = false; /* not loaded: not running */
                return 0;
        }
        if (r < 0)
                return fail(ret_message, r, "cannot ask systemd about %s: %s", unit,
                            error.message ? error.message : strerror(-r));
        r = sd_bus_message_read(reply, "o", &path);
        if (r < 0)
                return fail(ret_message, r, "cannot ask systemd about %s: unexpected reply", unit);
        r = sd_bus_get_property_string(bus, SYSTEMD_DEST, path, "org.freedesktop.systemd1.Unit",
                                       "ActiveState", &error, &state);
        if (r < 0)
                return fail(ret_message, r, "cannot read the state of %s: %s", unit,
                            error.message ? error.message : strerror(-r));
        *ret = streq(state, "active") || streq(state, "activating") || streq(state, "reloading");
        return 0;
}

static int open_systemd(sd_bus **ret, char **ret_message)
{
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus *bus = NULL;
        int r;

        /* The system bus ($DBUS_SYSTEM_BUS_ADDRESS when set). */
        r = sd_bus_open_system(&bus);
        if (r < 0)
                return fail(ret_message, r, "cannot connect to the system bus: %s", strerror(-r));
        /* systemd sends job signals only to subscribers */
        r = sd_bus_call_method(bus, SYSTEMD_DEST, SYSTEMD_PATH, SYSTEMD_MANAGER, "Subscribe", &error, NULL,
                               "");
        if (r < 0) {
                sd_bus_flush_close_unref(bus);
                return fail(ret_message, r, "cannot talk to systemd: %s",
                            error.message ? error.message : strerror(-r));
        }
        *ret = bus;
        return 0;
}

static void strv_free_local(char **l)
{
        for (char **p = l; p && *p; p++)
                free(*p);
        free(l);
}

int job_units_stop(char *const *units, uint64_t timeout_usec, char ***ret_stopped, char **ret_message)
{
        __attribute__((cleanup(sd_bus_flush_close_unrefp_local))) sd_bus *bus = NULL;
        char **stopped = NULL;
        size_t n = 0;
        int r;

        *ret_stopped = NULL;
        if (!units || !units[0])
                return 0;
        r = open_systemd(&bus, ret_message);
        if (r < 0)
                return r;
        for (char *const *u = units; *u; u++) {
                bool active = false;
                char **l;

                r = unit_is_active(bus, *u, &active, ret_message);
                if (r >= 0 && !active)
                        continue;
                if (r >= 0)
                        r = unit_job(bus, "StopUnit", *u, timeout_usec, ret_message);
                if (r < 0) {
                        /* leave things as they were */
                        (void)job_units_start(stopped, timeout_usec, NULL);
                        strv_free_local(stopped);
                        return r;
                }
                l = realloc(stopped, (n + 2) * sizeof(char *));
                if (!l || !(l[n] = strdup(*u))) {
                        if (l)
                                stopped = l;
                        strv_free_local(stopped);
                        return -ENOMEM;
                }
                stopped = l;
                stopped[++n] = NULL;
        }
        *ret_stopped = stopped;
        return 0;
}

int job_units_start(char *const *units, uint64_t timeout_usec, char **ret_message)
{
        __attribute__((cleanup(sd_bus_flush_close_unrefp_local))) sd_bus *bus = NULL;
        int r, ret = 0;

        if (!units || !units[0])
                return 0;
        r = open_systemd(&bus, ret_message);
        if (r < 0)
                return r;
        for (char *const *u = units; *u; u++) {
                r = unit_job(bus, "StartUnit", *u, timeout_usec, ret == 0 ? ret_message : NULL);
                if (r < 0 && ret == 0)
                        ret = r;
        }
        return ret;
}
