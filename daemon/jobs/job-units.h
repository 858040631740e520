/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Pausing systemd units around a flash (config `stop_units`, e.g.
 * klipper.service, whose klippy holds the board's serial port): stopped over
 * D-Bus (sd-bus, org.freedesktop.systemd1.Manager) before the board is
 * rebooted, started again when the job has ended. The polkit rule in
 * systemd/polkit/ lets the flashd user do exactly this.
 *
 * Blocking calls with timeouts: run on a job's worker thread. No logging:
 * every failure returns a negative errno and a sentence for a person.
 */

#include <stdint.h>

/* Stop those of `units` (NULL-terminated) that are active, waiting for each
 * stop job to finish. *ret_stopped (malloc'd, NULL-terminated; NULL when
 * none) lists the units that were stopped, to be started again. */
int job_units_stop(char *const *units, uint64_t timeout_usec, char ***ret_stopped, char **ret_message);
/* Start `units` again, each waited for. Tries every unit; returns the first error. */
int job_units_start(char *const *units, uint64_t timeout_usec, char **ret_message);
