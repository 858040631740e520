/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What every MCU of the printer runs against what it should run: the
 * printer's MCUs from printer.cfg ([klipper] printer_config), each matched
 * to an inventory entry by its serial: path (CAN nodes by canbus_uuid once
 * CAN is there), its running version from the entry (Klipper's identify),
 * the host version from the Klipper tree (git describe as the tree's
 * owner), and the build profile whose mcu_name is the MCU's name.
 *
 * Per MCU (proto/API.md update.status): name, board, port, transport
 * (usb|uart|can), running_version, host_version, state
 * (current|stale|unknown), reason (why unknown, else null), profile,
 * serial, canbus_uuid, mcu.
 */

#include <jansson.h>

typedef struct Manager Manager;

/* {"host_version", "host_error", "printer_config", "mcus": [...]}; never
 * fails but for -ENOMEM (problems become reasons in the object). */
int update_status_compute(Manager *m, json_t **ret);
