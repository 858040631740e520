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

#include "codec/can-proto.h"
#include "jobs/image-store.h"
#include "jobs/job-board.h"
#include "jobs/job-device.h"
#include "jobs/job-worker.h"

typedef struct JobFlowSpec {
        uint64_t job_id;
        ImageStore *store; /* borrowed; thread-safe (read-only opens) */
        char sha256[65];
        char *format; /* NULL: detect */
        uint32_t address;
        bool has_address;
        bool verify, mass_erase;
        unsigned force; /* 1 << ImageCheck */

        JobDevice *device; /* the board as last seen (owned) */
        JobFlowBoard board;
        bool has_board;

        bool resume_wait_app; /* restart during waiting-for-app: only wait */
        uint64_t reboot_wait_usec;
        uint64_t device_timeout_usec;
        uint64_t app_timeout_usec;
        unsigned uart_baud;      /* for uart_request boards (0: 250000) */
        char *const *stop_units; /* borrowed from the configuration, which outlives every worker */

        char *can_iface; /* a node on a CAN bus (job-flow-can.c) instead of a USB device */
        CanUuid can_uuid;
} JobFlowSpec;

void job_flow_spec_free(JobFlowSpec *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(JobFlowSpec *, job_flow_spec_free);

/* JobWorkerFunc; userdata is the JobFlowSpec (owned by the caller, which
 * frees it after the RESULT message). */
void job_flow_run(JobWorker *w, void *userdata);
