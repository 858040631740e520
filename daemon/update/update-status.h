/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What every MCU of the printer runs against what it should run: the
 * printer's MCUs from printer.cfg ([klipper] printer_config), each matched
 * to an inventory entry by its serial: path, or a CAN node by
 * canbus_interface:canbus_uuid, its running version from the entry
 * (Klipper's identify; for CAN nodes identify-service.h's record),
 * the host version from the Klipper tree (git describe as the tree's
 * owner), and the build profile whose mcu_name is the MCU's name.
 *
 * A board whose tty klippy holds is never asked by flashd; its running
 * version then comes from Moonraker (the agent queries Klipper's `mcu` /
 * `mcu NAME` objects): update_status_apply_moonraker() records it on the
 * inventory entry with firmware_source "moonraker".
 *
 * Per MCU (proto/API.md update.status): name, board, port, transport
 * (usb|uart|can), running_version, running_source (identify|moonraker:
 * who said so), host_version, state
 * (current|stale|unknown), reason (why unknown, else null), profile,
 * serial, canbus_uuid, mcu, bridge_port (a CAN MCU that is the USB-to-CAN
 * bridge board itself: its USB port).
 */

#include <jansson.h>

#include "update/printer-config.h"

typedef struct Manager Manager;

/* The CAN interface of a printer.cfg MCU (canbus_interface, default can0). */
const char *update_mcu_can_iface(const PrinterMcu *pm);

/* 1 when the host version (update/host-version.h) is known now, 0 while
 * git runs (m->host_version's host_version_on_ready() says when), or a
 * negative errno. */
int update_status_host_version_ready(Manager *m);
/* {"host_version", "host_error", "printer_config", "mcus": [...]}; never
 * fails but for -ENOMEM (problems become reasons in the object). */
int update_status_compute(Manager *m, json_t **ret);
/* `status` is printer.objects.query's result.status (borrowed): for each
 * MCU of printer.cfg whose object it holds, the entry at its serial: path
 * gets mcu_version and mcu_constants.MCU (unless flashd read the board
 * itself). Returns the number of entries updated, or -ENOMEM. */
int update_status_apply_moonraker(Manager *m, json_t *status);
