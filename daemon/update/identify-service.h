/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Asks every board that appears in Klipper's application mode what it
 * runs: a short-lived worker thread checks that nobody holds the tty (a
 * running klippy has it: never steal it), reads the data dictionary with
 * `identify` (serial/klipper-identify.c) and hands version and MCU back to
 * the main loop, which records them on the inventory entry
 * (inventory_set_firmware). A board whose tty is held, or that does not
 * answer, keeps no firmware version (its status is "unknown").
 */

#include <systemd/sd-event.h>

#include "inventory/inventory.h"
#include "jobs/job-queue.h"

typedef struct IdentifyService IdentifyService;

int identify_service_new(IdentifyService **ret, sd_event *event, Inventory *inv, JobQueue *queue);
/* Cancels and joins the workers. */
IdentifyService *identify_service_free(IdentifyService *s);
/* Ask the board on `port` again (e.g. after klippy let go of it). */
int identify_service_refresh(IdentifyService *s, const char *port);

/*
 * CAN nodes (IFACE, UUID as 12 hex digits), asked only on request: a
 * worker asks the node over the bus (can/can-identify.h: only while no
 * node id is given, i.e. klippy does not hold it), unless one is asking
 * already or a job holds the node (or `job_port`, its bridge's USB port).
 */
int identify_service_refresh_can(IdentifyService *s, const char *iface, const char *uuid,
                                 const char *job_port);
/* What is known: -ENOENT never asked; else the last attempt's result (0,
 * or its negative errno: -EBUSY not unassigned, -EPROTO in Katapult, ...)
 * with the last version known (may be NULL; borrowed until the next call). */
int identify_service_get_can(IdentifyService *s, const char *iface, const char *uuid,
                             const char **ret_version, const char **ret_mcu, const char **ret_source,
                             bool *ret_asking);
/* A version reported by someone else (Moonraker, while klippy holds the node). */
int identify_service_set_can(IdentifyService *s, const char *iface, const char *uuid, const char *version,
                             const char *mcu, const char *source);
/* What the node ran is no longer known (it is about to be flashed). */
void identify_service_forget_can(IdentifyService *s, const char *iface, const char *uuid);
