/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The update planner: which MCUs of the printer to bring to the host's
 * Klipper version, with which profile, in which order; and a run of that
 * plan:
 *   1. build every image first (Klipper's make in the user's tree, as the
 *      tree's owner, output streamed as notify_update_progress lines); the
 *      built image's dictionary must name the profile's MCU and the host
 *      version. A build failure ends the run: no board is touched.
 *   2. stop the stop_units (klipper.service) once for the whole run;
 *   3. flash in order (CAN nodes, then UART, then USB boards, then USB-to-CAN
 *      bridge boards: nodes behind
 *      a bridge before the bridge), each an ordinary job through the queue,
 *      one after another; a failed board does not stop the others;
 *   4. read the flashed CAN nodes' versions while klippy is still away
 *      (it gives them node ids, then they are silent);
 *   5. start the units again, wait (bounded) for each flashed board to say
 *      what it runs, and answer with what happened to each.
 * The planner never talks to a board itself. One run at a time.
 */

#include <jansson.h>
#include <stdbool.h>

typedef struct Manager Manager;
typedef struct RpcCall RpcCall;
typedef struct UpdateRun UpdateRun;

/* The plan for `names` (array of MCU names) or every stale MCU (`all`).
 * -ENOENT with *ret_error when a name is no MCU of printer.cfg. */
int update_plan_compute(Manager *m, json_t *names, bool all, json_t **ret, char **ret_error);

/* Start a run answering `call` when it ends. -EBUSY while one runs. */
int update_run_start(Manager *m, RpcCall *call, json_t *plan);
UpdateRun *update_run_free(UpdateRun *r);
