/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The Manager owns everything the main loop owns: the event loop, the
 * configuration, the board database, the inventory and the server. RPC
 * handlers reach it through rpc_call_get_manager(). Other modules (jobs,
 * rules) add their object here and start it in manager_start().
 */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "boards/board-db.h"
#include "daemon-config.h"
#include "can/can-inventory.h"
#include "inventory/inventory.h"
#include "jobs/job-service.h"
#include "moonraker/moonraker-agent.h"
#include "rules/rule-service.h"
#include "server/server.h"
#include "update/host-version.h"
#include "update/identify-service.h"
#include "update/update-run.h"

typedef struct Manager {
        sd_event *event; /* NULL for a manager that only dispatches (fuzzing, unit tests) */
        Config *config;  /* owned */
        BoardDb *boards; /* owned; never NULL after manager_new() */
        Inventory *inventory;
        CanInventory *can; /* CAN nodes (daemon/can); NULL without an event loop */
        Server *server;
        JobService *jobs;          /* flash jobs; NULL without an event loop */
        RuleService *rules;        /* automatic flashing on hotplug (daemon/rules); NULL without jobs */
        MoonrakerAgent *moonraker; /* [moonraker] socket set: flashd as a Moonraker agent */
        UpdateRun *update;         /* the last `flashctl update` run (daemon/update), or NULL */
        IdentifyService *identify; /* what app-mode boards run (daemon/update); NULL without an event loop */
        HostVersion *host_version; /* git describe, off the loop (daemon/update); NULL likewise */
        uint64_t start_usec;       /* CLOCK_MONOTONIC */
        bool stopping;
        size_t status_devices; /* device count last sent in STATUS= */
        /* device.list's last result, encoded (JSON text), sent as it is by
         * every reply; valid while the inventory's change count and the
         * jobs' hold on ports (device_list_jobs) are what they were when it
         * was built */
        char *device_list;
        size_t device_list_len;
        uint64_t device_list_changes;
        char *device_list_jobs;
} Manager;

/* Takes ownership of config. With `event` NULL nothing is started (no udev,
 * no socket): RPC dispatch still works. Fails with a clear log message when
 * the board database does not load. */
int manager_new(Manager **ret, sd_event *event, Config *config);
Manager *manager_free(Manager *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(Manager *, manager_free);

/* Create the state dir, take the listening sockets (socket activation or
 * config->socket_path), start the inventory. */
int manager_start(Manager *m);

sd_event *manager_get_event(Manager *m);
/* Seconds since start. */
double manager_uptime(const Manager *m);
