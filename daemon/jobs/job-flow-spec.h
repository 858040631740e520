/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What a flash job's flow is given (JobFlowSpec: everything copied before
 * its worker thread starts) and the FlashCallbacks that report a session's
 * phases, progress and notes to the job. Shared by every flow (USB and
 * serial in job-flow.c, CAN in job-flow-can.c), below all of them.
 */

#include <stdbool.h>
#include <stdint.h>

#include "codec/can-proto.h"
#include "jobs/image-store.h"
#include "jobs/job-board.h"
#include "jobs/job-device.h"
#include "jobs/job-worker.h"
#include "util/flash-callbacks.h"

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

/* FlashCallbacks that report to the job: phases, progress, notes to its log, its cancel flag. */
FlashCallbacks job_flow_callbacks(JobWorker *w);
