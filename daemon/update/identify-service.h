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
