/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "can/can-transport.h"
#include "jobs/job-flow-bridge.h"
#include "util/log.h"
#include "util/macros.h"
#include "manager.h"
#include "serial/bootloader-request.h"
#include "update/host-version.h"
#include "update/klipper-tree.h"
#include "update/printer-config.h"
#include "update/profile-store.h"
#include "update/update-status.h"

static const char *entry_transport(const InventoryEntry *e)
{
        /* Klipper's own USB face is CDC-ACM on the MCU; a generic USB
         * serial adapter in front of the MCU's UART shows as SERIAL */
        return e->mode == DEVICE_MODE_SERIAL ? "uart" : "usb";
}

static char *unknown_reason(const InventoryEntry *e)
{
        char *s = NULL;
        TtyUse use;
        TtyHolder holder;

        if (e->mode != DEVICE_MODE_APP && e->mode != DEVICE_MODE_SERIAL) {
                if (asprintf(&s, "the board is in %s mode, not running Klipper",
                             device_mode_to_string(e->mode)) < 0)
                        return NULL;
                return s;
        }
        if (e->tty && tty_check_use("/proc", e->tty, getpid(), &use, &holder, NULL) >= 0 &&
            (use == TTY_USE_HELD || use == TTY_USE_LOCKED)) {
                if (asprintf(&s, "%s is in use by %s: flashd does not take the port from it", e->tty,
                             use == TTY_USE_HELD ? holder.name : "another process (klippy?)") < 0)
                        return NULL;
                return s;
        }
        return strdup("the board did not answer Klipper's identify (asked again now)");
}

const char *update_mcu_can_iface(const PrinterMcu *pm)
{
        /* Klipper's default (klippy/mcu.py) */
        return pm->canbus_interface ?: "can0";
}

/* A CAN node: what it runs as far as flashd knows, and whether it is the
 * USB-to-CAN bridge board itself (flashed on its USB port, last). */
static char *can_status(Manager *m, const PrinterMcu *pm, char **ret_port, const char **ret_bridge_port,
                        const char **ret_board, const char **ret_running, const char **ret_source,
                        const char **ret_mcu)
{
        const char *iface = update_mcu_can_iface(pm), *version = NULL, *mcu = NULL, *source = NULL;
        const InventoryEntry *e;
        bool asking = false;
        char *reason = NULL, u[13];
        CanUuid uuid;
        int r;

        if (can_uuid_parse(pm->canbus_uuid, &uuid) < 0) {
                if (asprintf(&reason, "canbus_uuid '%s' is no CAN UUID (12 hex digits)", pm->canbus_uuid) <
                    0)
                        return NULL;
                return reason;
        }
        if (asprintf(ret_port, "%s:%s", iface, can_uuid_format(&uuid, u)) < 0)
                return NULL;
        /* flashd's identify leaves the node with a node id, so it no longer
         * answers the inventory's query: keep it listed (as assigned) */
        if (m->can)
                (void)can_inventory_remember(m->can, iface, &uuid);
        *ret_bridge_port = job_bridge_port_for_uuid(m->inventory, &uuid);
        e = *ret_bridge_port ? inventory_get(m->inventory, *ret_bridge_port) : NULL;
        if (e && e->board && !*ret_board)
                *ret_board = e->board->name;
        if (!m->identify)
                return strdup("flashd does not ask CAN nodes here (no event loop)");
        /* asked every time: a node flashed since comes back unassigned and
         * answers; one klippy holds stays silent and keeps what was known
         * (or what Moonraker reported) */
        bool have_iface = can_interface_is_up(iface) != -ENODEV;
        if (have_iface)
                (void)identify_service_refresh_can(m->identify, iface, u, *ret_bridge_port);
        r = identify_service_get_can(m->identify, iface, u, &version, &mcu, &source, &asking);
        if (version) {
                *ret_running = version;
                *ret_source = source;
                *ret_mcu = mcu;
                return NULL;
        }
        if (!have_iface) {
                if (asprintf(&reason,
                             "there is no CAN interface %s: is the adapter or bridge board connected?",
                             iface) < 0)
                        return NULL;
                return reason;
        }
        if (r == -ENOENT || (r == 0 && asking))
                return strdup("asking the node what it runs (Klipper's identify over CAN); ask again");
        if (r == -EBUSY) {
                if (asprintf(&reason,
                             "node %s does not answer Klipper's admin query: klippy holds it (Moonraker "
                             "reports its version once connected), or it is not on %s",
                             *ret_port, iface) < 0)
                        return NULL;
                return reason;
        }
        if (r == -EPROTO)
                return strdup("the node is in Katapult, not running Klipper");
        if (asprintf(&reason, "node %s did not answer Klipper's identify over CAN: %s", *ret_port,
                     strerror(-r)) < 0)
                return NULL;
        return reason;
}

static json_t *mcu_status(Manager *m, const PrinterMcu *pm, const char *host_version, const char *host_error)
{
        _cleanup_free_ char *can_port = NULL;
        const char *bridge_port = NULL, *can_mcu = NULL;
        _cleanup_free_ char *reason = NULL;
        json_auto_t *profile = NULL;
        const InventoryEntry *e = NULL;
        const char *transport = NULL, *port = NULL, *running = NULL, *source = NULL, *board = NULL, *state;

        (void)profile_store_find_mcu(m->config->state_dir, pm->name, &profile);
        if (profile)
                board = json_string_value(json_object_get(profile, "board"));
        if (pm->canbus_uuid) {
                transport = "can";
                reason = can_status(m, pm, &can_port, &bridge_port, &board, &running, &source, &can_mcu);
                port = can_port;
                if (!reason && !running)
                        return NULL;
        } else if (pm->serial) {
                if (inventory_find(m->inventory, pm->serial, &e, NULL) >= 0 && e) {
                        port = e->port;
                        transport = entry_transport(e);
                        if (!board && e->board)
                                board = e->board->name;
                        if (e->mode == DEVICE_MODE_APP && e->firmware_generation == e->generation) {
                                running = e->firmware_version;
                                source = running ? e->firmware_source : NULL;
                        }
                        if (!running) {
                                reason = unknown_reason(e);
                                if (e->mode == DEVICE_MODE_APP && m->identify)
                                        (void)identify_service_refresh(m->identify, e->port);
                        }
                } else {
                        port = pm->serial;
                        transport =
                                strstr(pm->serial, "/dev/serial/by-id/usb-") == pm->serial ? "usb" : "uart";
                        if (asprintf(&reason, "no board at %s: is it connected?", pm->serial) < 0)
                                reason = NULL;
                }
        } else
                reason = strdup("printer.cfg gives neither serial nor canbus_uuid");

        if (!host_version) {
                state = "unknown";
                free(reason);
                reason = strdup(host_error ?: "the host's Klipper version is not known");
        } else if (!running)
                state = "unknown";
        else {
                state = streq(running, host_version) ? "current" : "stale";
                free(reason);
                reason = NULL;
        }
        return json_pack("{s:s,s:s?,s:s?,s:s?,s:s?,s:s?,s:s?,s:s,s:s?,s:s?,s:s?,s:s?,s:s?,s:s?}", "name",
                         pm->name, "board", board, "port", port, "transport", transport, "running_version",
                         running, "running_source", source, "host_version", host_version, "state", state,
                         "reason", reason, "profile",
                         profile ? json_string_value(json_object_get(profile, "name")) : NULL, "serial",
                         pm->serial, "canbus_uuid", pm->canbus_uuid, "mcu",
                         e && e->firmware_mcu ? e->firmware_mcu : can_mcu, "bridge_port", bridge_port);
}

static char *mcu_object_name(const char *mcu_name)
{
        char *s = NULL;

        if (streq(mcu_name, "mcu"))
                return strdup("mcu");
        if (asprintf(&s, "mcu %s", mcu_name) < 0)
                return NULL;
        return s;
}

/* The printer's MCUs: printer_config of flashd.conf, else Klipper's own
 * configuration as Moonraker reported it. */
static int load_printer_config(Manager *m, PrinterConfig **ret, char **ret_error, const char **ret_source)
{
        const KlipperConfig *kc = &m->config->klipper;
        json_t *config = m->moonraker ? moonraker_agent_get_printer_config(m->moonraker) : NULL;
        int r;

        *ret_source = NULL;
        if (kc->printer_config) {
                r = printer_config_load(kc->printer_config, ret, ret_error);
                if (r < 0 && !*ret_error &&
                    asprintf(ret_error, "cannot read %s: %s", kc->printer_config, strerror(-r)) < 0)
                        *ret_error = NULL;
                if (r >= 0)
                        *ret_source = "file";
                return r;
        }
        if (config) {
                r = printer_config_from_klipper(config, ret);
                if (r >= 0)
                        *ret_source = "moonraker";
                return r;
        }
        *ret_error = strdup(m->moonraker ? "no printer_config in the [klipper] section of flashd.conf, and "
                                           "Moonraker has not reported Klipper's configuration (yet): "
                                           "flashd does not know the printer's MCUs"
                                         : "no printer_config in the [klipper] section of flashd.conf: "
                                           "flashd does not know the printer's MCUs");
        return -ENOENT;
}

int update_status_apply_moonraker(Manager *m, json_t *status)
{
        _cleanup_free_ char *error = NULL;
        PrinterConfig *pc = NULL;
        const char *source;
        int r, n = 0;

        r = load_printer_config(m, &pc, &error, &source);
        if (r < 0) {
                log_debug("moonraker: no printer config to match Klipper's MCUs with: %s", strna(error));
                return r == -ENOMEM ? r : 0;
        }
        for (size_t i = 0; i < pc->n_mcus; i++) {
                const PrinterMcu *pm = &pc->mcus[i];
                const InventoryEntry *e = NULL;
                _cleanup_free_ char *name = mcu_object_name(pm->name);

                if (!name) {
                        n = -ENOMEM;
                        break;
                }
                json_t *obj = json_object_get(status, name);
                const char *version = json_string_value(json_object_get(obj, "mcu_version"));
                const char *mcu =
                        json_string_value(json_object_get(json_object_get(obj, "mcu_constants"), "MCU"));
                /* Klipper reports an MCU it has not connected to yet with
                 * empty fields */
                if (!version || !*version)
                        continue;
                if (pm->canbus_uuid && m->identify) {
                        const char *v = NULL, *mc = NULL, *src = NULL;
                        CanUuid uuid;
                        char u[13];
                        bool asking;
                        if (can_uuid_parse(pm->canbus_uuid, &uuid) < 0)
                                continue;
                        can_uuid_format(&uuid, u);
                        (void)identify_service_get_can(m->identify, update_mcu_can_iface(pm), u, &v, &mc,
                                                       &src, &asking);
                        if (streq_ptr(v, version) && streq_ptr(mc, mcu))
                                continue;
                        log_info("CAN node %s:%s: Klipper %s on %s (%s, through Moonraker)",
                                 update_mcu_can_iface(pm), u, version, strna(mcu), name);
                        r = identify_service_set_can(m->identify, update_mcu_can_iface(pm), u, version, mcu,
                                                     "moonraker");
                        if (r < 0) {
                                n = r;
                                break;
                        }
                        n++;
                        continue;
                }
                if (!pm->serial)
                        continue;
                if (inventory_find(m->inventory, pm->serial, &e, NULL) < 0 || !e ||
                    e->mode != DEVICE_MODE_APP)
                        continue;
                bool known = e->firmware_generation == e->generation && e->firmware_source;
                /* the board's own answer beats a report about it */
                if (known && streq(e->firmware_source, "identify"))
                        continue;
                if (known && streq_ptr(e->firmware_version, version) && streq_ptr(e->firmware_mcu, mcu))
                        continue;
                log_info("device %s: Klipper %s on %s (%s, through Moonraker)", e->port, version, strna(mcu),
                         name);
                r = inventory_set_firmware(m->inventory, e->port, e->generation, version, mcu, "moonraker");
                if (r < 0) {
                        n = r;
                        break;
                }
                n++;
        }
        printer_config_free(pc);
        return n;
}

int update_status_host_version_ready(Manager *m)
{
        _cleanup_free_ char *tree = klipper_config_tree(&m->config->klipper);
        const char *v, *err;

        if (!m->host_version || !tree)
                return 1;
        return host_version_get(m->host_version, tree, m->config->klipper.user, &v, &err);
}

int update_status_compute(Manager *m, json_t **ret)
{
        _cleanup_free_ char *tree = NULL, *version = NULL, *host_error = NULL, *pc_error = NULL;
        const char *pc_source = NULL;
        _cleanup_(klipper_builder_done) KlipperBuilder builder = {};
        PrinterConfig *pc = NULL;
        const KlipperConfig *kc = &m->config->klipper;
        json_auto_t *o = NULL, *mcus = json_array();
        int r;

        if (!mcus)
                return -ENOMEM;
        tree = klipper_config_tree(kc);
        if (m->host_version && tree) {
                const char *v = NULL, *err = NULL;
                r = host_version_get(m->host_version, tree, kc->user, &v, &err);
                if (r > 0) {
                        version = v ? strdup(v) : NULL;
                        host_error = err ? strdup(err) : NULL;
                        if ((v && !version) || (err && !host_error))
                                return -ENOMEM;
                } else if (r == 0)
                        host_error = strdup("git describe in the Klipper tree is still running: ask again");
                else if (asprintf(&host_error, "cannot run git describe in %s: %s", tree, strerror(-r)) < 0)
                        host_error = NULL;
        } else {
                /* no event loop (tests): git on this thread */
                r = klipper_builder_resolve(tree, kc->user, &builder, &host_error);
                if (r >= 0)
                        r = klipper_tree_version(&builder, tree, &version, &host_error);
                if (r < 0 && !host_error &&
                    asprintf(&host_error, "cannot read the Klipper version of %s: %s", strna(tree),
                             strerror(-r)) < 0)
                        host_error = NULL;
        }

        r = load_printer_config(m, &pc, &pc_error, &pc_source);
        if (r == -ENOMEM)
                return r;

        /* Moonraker's report may be older than the boards: ask again, the
         * next status shows the answer */
        if (m->moonraker)
                (void)moonraker_agent_query_mcus(m->moonraker);
        for (size_t i = 0; pc && i < pc->n_mcus; i++) {
                json_t *s = mcu_status(m, &pc->mcus[i], version, host_error);
                if (!s || json_array_append_new(mcus, s) < 0) {
                        printer_config_free(pc);
                        return -ENOMEM;
                }
        }
        printer_config_free(pc);
        o = json_pack("{s:s?,s:s?,s:s?,s:s?,s:s?,s:s?,s:O}", "host_version", version, "host_error",
                      host_error, "klipper_path", tree, "printer_config", kc->printer_config,
                      "printer_config_source", pc_source, "printer_config_error", pc_error, "mcus", mcus);
        if (!o)
                return -ENOMEM;
        *ret = TAKE_PTR(o);
        return 0;
}
