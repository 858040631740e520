/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "config.h"
#include "util/fs-util.h"
#include "util/log.h"
#include "manager.h"
#include "util/time-util.h"

static void manager_on_inventory(Inventory *inv, InventoryEvent event, const InventoryEntry *e,
                                 void *userdata)
{
        Manager *m = userdata;
        static const char *const names[_INVENTORY_EVENT_MAX] = {
                [INVENTORY_EVENT_ADDED] = "notify_device_added",
                [INVENTORY_EVENT_CHANGED] = "notify_device_changed",
                [INVENTORY_EVENT_REMOVED] = "notify_device_removed",
        };

        size_t n = inventory_count(m->inventory);
        if (n != m->status_devices) {
                m->status_devices = n;
                sd_notifyf(false, "STATUS=Serving %zu devices, %zu boards in the database", n,
                           m->boards->n_boards);
        }
        if (!m->server)
                return;
        json_auto_t *params = json_array();
        if (!params || json_array_append_new(params, inventory_entry_to_json(e)) < 0) {
                log_oom();
                return;
        }
        server_broadcast(m->server, names[event], params);
}

int manager_new(Manager **ret, sd_event *event, Config *config)
{
        _cleanup_(manager_freep) Manager *m = calloc(1, sizeof(*m));
        _cleanup_free_ char *error = NULL;
        int r;

        if (!m) {
                config_free(config);
                return -ENOMEM;
        }
        m->config = config;
        m->event = event ? sd_event_ref(event) : NULL;
        m->start_usec = now_usec(CLOCK_MONOTONIC);

        const char *const *dirs = config->n_boards_dirs > 0 ? (const char *const *)config->boards_dirs
                                                            : board_db_default_dirs();
        r = board_db_load(&m->boards, dirs, &error);
        if (r < 0)
                return log_error_errno(r, "cannot load the board database: %s",
                                       error ? error : strerror(-r));
        _cleanup_free_ char *searched = board_db_dirs_to_string(dirs);
        /* Without boards nothing is recognised or flashable by name: say
         * where flashd looked, since that is what is wrong. */
        if (m->boards->n_boards == 0)
                log_warning("the board database is empty: no board files in %s (set boards_dir in "
                            "flashd.conf or pass --boards-dir)",
                            strna(searched));
        else
                log_info("board database: %zu boards from %s", m->boards->n_boards, strna(searched));

        r = inventory_new(&m->inventory, event, m->boards);
        if (r < 0)
                return r;
        r = inventory_add_listener(m->inventory, manager_on_inventory, m);
        if (r < 0)
                return r;
        r = server_new(&m->server, m);
        if (r < 0)
                return r;
        if (event) {
                r = can_inventory_new(&m->can, event);
                if (r < 0)
                        return log_oom();
        }
        if (event) {
                JobQueueConfig jc = JOB_QUEUE_CONFIG_DEFAULTS;
                jc.state_dir = config->state_dir;
                jc.retry_interrupted = config->retry_interrupted;
                jc.interrupted_expire_usec = (uint64_t)(config->interrupted_expire_sec * 1e6);
                jc.reboot_wait_usec = (uint64_t)(config->reboot_wait_sec * 1e6);
                jc.device_timeout_usec = (uint64_t)(config->bootloader_timeout_sec * 1e6);
                jc.app_timeout_usec = (uint64_t)(config->app_timeout_sec * 1e6);
                jc.stop_units = config->stop_units;
                jc.uart_baud = config->uart_baud;
                r = job_service_new(&m->jobs, m, &jc);
                if (r < 0)
                        return log_error_errno(r, "cannot set up the job queue in %s: %m",
                                               config->state_dir);
                /* Rules (daemon/rules) submit jobs and follow them. */
                r = rule_service_new(&m->rules, m);
                if (r < 0)
                        return log_oom();
        }
        if (event) {
                r = identify_service_new(&m->identify, event, m->inventory,
                                         m->jobs ? job_service_get_queue(m->jobs) : NULL);
                if (r < 0)
                        return log_error_errno(r, "cannot set up Klipper's identify: %m");
                r = host_version_new(&m->host_version, event);
                if (r < 0)
                        return log_error_errno(r, "cannot set up the host version reader: %m");
        }
        if (event && config->moonraker.socket_path) {
                /* The Moonraker agent (daemon/moonraker): it
                 * forwards every broadcast as an agent event. */
                r = moonraker_agent_new(&m->moonraker, m, &config->moonraker);
                if (r < 0)
                        return log_error_errno(r, "cannot set up the Moonraker agent: %m");
                server_set_broadcast_hook(m->server, moonraker_agent_on_broadcast, m->moonraker);
        }
        *ret = TAKE_PTR(m);
        return 0;
}

Manager *manager_free(Manager *m)
{
        if (!m)
                return NULL;
        /* Jobs first: calls they still hold are answered (or dropped with an
         * error reply) through the server, which must still exist. Then the
         * server, then the inventory the others listen to. */
        m->update = update_run_free(m->update);               /* follows jobs, answers through the server */
        m->host_version = host_version_free(m->host_version); /* answers waiting calls */
        m->rules = rule_service_free(m->rules);               /* observes the jobs */
        m->jobs = job_service_free(m->jobs);
        m->server = server_free(m->server);
        /* After jobs and server: calls relayed by Moonraker are answered
         * through it, and the server's broadcast hook points at it. */
        m->moonraker = moonraker_agent_free(m->moonraker);
        m->identify = identify_service_free(m->identify);
        m->inventory = inventory_free(m->inventory);
        m->can = can_inventory_free(m->can);
        free(m->device_list);
        free(m->device_list_jobs);
        board_db_free(m->boards);
        config_free(m->config);
        sd_event_unref(m->event);
        free(m);
        return NULL;
}

sd_event *manager_get_event(Manager *m)
{
        return m->event;
}

double manager_uptime(const Manager *m)
{
        return (double)(now_usec(CLOCK_MONOTONIC) - m->start_usec) / 1e6;
}

static int manager_listen(Manager *m)
{
        char **names = NULL;
        int n, r;

        if (!m->config->socket_path) {
                /* Socket activation (flashd.socket): take every fd passed to us. */
                n = sd_listen_fds_with_names(true, &names);
                if (n < 0)
                        return log_error_errno(n, "sd_listen_fds_with_names failed: %m");
                for (int i = 0; i < n; i++) {
                        log_info("listening on socket-activated fd %d (%s)", SD_LISTEN_FDS_START + i,
                                 names && names[i] ? names[i] : "?");
                        r = server_add_listen_fd(m->server, SD_LISTEN_FDS_START + i);
                        if (r < 0)
                                return log_error_errno(r, "cannot watch fd %d: %m", SD_LISTEN_FDS_START + i);
                }
                for (int i = 0; names && names[i]; i++)
                        free(names[i]);
                free(names);
                if (n > 0)
                        return 0;
        }
        return server_listen_path(m->server,
                                  m->config->socket_path ? m->config->socket_path : FLASHD_DEFAULT_SOCKET,
                                  m->config->socket_group);
}

int manager_start(Manager *m)
{
        int r;

        r = mkdir_p(m->config->state_dir, 0750);
        if (r < 0)
                return log_error_errno(r, "cannot create the state directory %s: %m", m->config->state_dir);
        r = manager_listen(m);
        if (r < 0)
                return r;
        r = inventory_start(m->inventory);
        if (r < 0)
                return log_error_errno(r, "cannot start the device inventory: %m");
        log_info("%zu devices present", inventory_count(m->inventory));
        if (m->can && m->config->printer_cfg) {
                r = can_inventory_load_printer_cfg(m->can, m->config->printer_cfg);
                if (r < 0)
                        log_warning("cannot read printer_cfg %s: %s; its CAN MCUs are not known",
                                    m->config->printer_cfg, strerror(-r));
                else
                        log_info("printer_cfg %s: %d CAN MCU%s", m->config->printer_cfg, r,
                                 r == 1 ? "" : "s");
        }
        if (m->can) {
                r = can_inventory_start(m->can);
                if (r < 0)
                        return log_error_errno(r, "cannot start the CAN node inventory: %m");
        }
        if (m->jobs) {
                r = job_service_start(m->jobs);
                if (r < 0)
                        return r;
        }
        if (m->rules) {
                r = rule_service_start(m->rules);
                if (r < 0)
                        return r;
        }
        /* Connects in the background; Moonraker may come later or never. */
        if (m->moonraker)
                (void)moonraker_agent_start(m->moonraker);
        return 0;
}
