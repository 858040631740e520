/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A stand-in for the part of systemd's D-Bus API that flashd's stop_units
 * uses, on a private bus for tests (no systemd runs here):
 *
 *   fake-systemd1 BUS_ADDRESS UNIT [PID_TO_KILL_ON_STOP]
 *
 * owns org.freedesktop.systemd1 and answers Manager.Subscribe, GetUnit,
 * StopUnit and StartUnit for the one unit UNIT (active at start), with the
 * Unit.ActiveState property and a JobRemoved signal after each job, as
 * systemd does. Stopping the unit kills PID (the "klippy" holding the tty).
 * Every call is printed on stdout ("stop klipper.service"); "ready" once the
 * name is owned.
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>

#define UNIT_PATH "/org/freedesktop/systemd1/unit/fake"

static const char *unit_name;
static char active_state[16] = "active";
static pid_t victim;
static uint32_t next_job = 1;

static int check_unit(const char *name, sd_bus_error *error)
{
        if (strcmp(name, unit_name) != 0)
                return sd_bus_error_setf(error, "org.freedesktop.systemd1.NoSuchUnit", "Unit %s not loaded.",
                                         name);
        return 0;
}

static int method_subscribe(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
        printf("subscribe\n");
        fflush(stdout);
        return sd_bus_reply_method_return(m, "");
}

static int method_get_unit(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
        const char *name;
        int r = sd_bus_message_read(m, "s", &name);

        if (r < 0)
                return r;
        r = check_unit(name, error);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(m, "o", UNIT_PATH);
}

static int unit_job(sd_bus_message *m, sd_bus_error *error, bool stop)
{
        const char *name, *mode;
        char path[64];
        uint32_t id = next_job++;
        int r = sd_bus_message_read(m, "ss", &name, &mode);

        if (r < 0)
                return r;
        r = check_unit(name, error);
        if (r < 0)
                return r;
        printf("%s %s\n", stop ? "stop" : "start", name);
        fflush(stdout);
        if (stop && victim > 0) {
                kill(victim, SIGKILL);
                victim = 0;
        }
        snprintf(active_state, sizeof(active_state), "%s", stop ? "inactive" : "active");
        snprintf(path, sizeof(path), "/org/freedesktop/systemd1/job/%u", id);
        r = sd_bus_reply_method_return(m, "o", path);
        if (r < 0)
                return r;
        return sd_bus_emit_signal(sd_bus_message_get_bus(m), "/org/freedesktop/systemd1",
                                  "org.freedesktop.systemd1.Manager", "JobRemoved", "uoss", id, path, name,
                                  "done");
}

static int method_stop_unit(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
        return unit_job(m, error, true);
}

static int method_start_unit(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
        return unit_job(m, error, false);
}

static int property_active_state(sd_bus *bus, const char *path, const char *interface, const char *property,
                                 sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
        return sd_bus_message_append(reply, "s", active_state);
}

static const sd_bus_vtable manager_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD("Subscribe", "", "", method_subscribe, 0),
        SD_BUS_METHOD("GetUnit", "s", "o", method_get_unit, 0),
        SD_BUS_METHOD("StopUnit", "ss", "o", method_stop_unit, 0),
        SD_BUS_METHOD("StartUnit", "ss", "o", method_start_unit, 0),
        SD_BUS_SIGNAL("JobRemoved", "uoss", 0),
        SD_BUS_VTABLE_END,
};

static const sd_bus_vtable unit_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("ActiveState", "s", property_active_state, 0, 0),
        SD_BUS_VTABLE_END,
};

int main(int argc, char **argv)
{
        sd_bus *bus = NULL;
        int r;

        if (argc < 3) {
                fprintf(stderr, "usage: fake-systemd1 BUS_ADDRESS UNIT [PID]\n");
                return 2;
        }
        unit_name = argv[2];
        victim = argc > 3 ? (pid_t)atoi(argv[3]) : 0;

        r = sd_bus_new(&bus);
        if (r >= 0)
                r = sd_bus_set_address(bus, argv[1]);
        if (r >= 0)
                r = sd_bus_set_bus_client(bus, 1);
        if (r >= 0)
                r = sd_bus_start(bus);
        if (r >= 0)
                r = sd_bus_add_object_vtable(bus, NULL, "/org/freedesktop/systemd1",
                                             "org.freedesktop.systemd1.Manager", manager_vtable, NULL);
        if (r >= 0)
                r = sd_bus_add_object_vtable(bus, NULL, UNIT_PATH, "org.freedesktop.systemd1.Unit",
                                             unit_vtable, NULL);
        if (r >= 0)
                r = sd_bus_request_name(bus, "org.freedesktop.systemd1", 0);
        if (r < 0) {
                fprintf(stderr, "fake-systemd1: %s\n", strerror(-r));
                return 1;
        }
        printf("ready\n");
        fflush(stdout);
        for (;;) {
                r = sd_bus_process(bus, NULL);
                if (r < 0) {
                        fprintf(stderr, "fake-systemd1: %s\n", strerror(-r));
                        return 1;
                }
                if (r > 0)
                        continue;
                /* every wait has a timeout: the test kills us well before */
                r = sd_bus_wait(bus, 60 * 1000000ull);
                if (r < 0)
                        return 1;
                if (r == 0)
                        return 0;
        }
}
