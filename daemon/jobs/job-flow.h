/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The flow of one flash job, as plain sequential code on its worker thread:
 *
 *   parse image, safety checks (board DB layout) ->
 *   [app mode] tty holder check -> rebooting (1200 baud) ->
 *   waiting-for-device (same port in DFU or Katapult mode; the board's hint
 *   after ~10 s; keeps waiting until the overall timeout or cancel) ->
 *   safety checks again (the device's own layout) -> flashing (session by
 *   what the board came back as) -> waiting-for-app (same port back in app
 *   mode) -> result.
 *
 * It talks to the main loop only through its JobWorker; everything it needs
 * is copied into the JobFlowSpec before the thread starts.
 */

#include <stdbool.h>
#include <stdint.h>

#include "jobs/job-flow-spec.h"

/* JobWorkerFunc; userdata is the JobFlowSpec (owned by the caller, which
 * frees it after the RESULT message). */
void job_flow_run(JobWorker *w, void *userdata);
