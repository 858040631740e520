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
#include "jobs/job-device.h"
#include "jobs/job-worker.h"
#include "serial/katapult-session.h"
#include "util/flash-callbacks.h"

typedef struct JobPayload JobPayload;

typedef struct JobFlowBoard {
        char *name, *variant, *mcu;
        uint32_t flash_base, flash_size, app_offset;
        uint32_t ram_start, ram_size;
        char *layout;       /* fallback layout from the DB */
        bool katapult;      /* the board usually has Katapult */
        bool manual_reboot; /* the DB says software reboot does not work */
        bool uart_request;  /* reboot = uart-request: Klipper's serial request block, not 1200 baud */
        char *hint;         /* hints joined, for waiting-for-device */
        /* an AVR behind a USB-serial bridge (bootloader stk500v2/stk500v1) */
        bool avr;
        bool avr_stk500v1; /* optiboot; else the Mega's STK500v2 */
        uint8_t avr_signature[3];
        uint32_t avr_page_size, avr_boot_size, avr_baud;
} JobFlowBoard;

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

/* Shared by the USB/serial flow (job-flow.c) and the CAN flow (job-flow-can.c): */

/* FlashCallbacks that report to the job: phases, progress, notes to its log, its cancel flag. */
FlashCallbacks job_flow_callbacks(JobWorker *w);
/* Katapult on either transport: the options from the job (forced checks,
 * verify, the board's layout for the vector table's page) and the flash;
 * the session's result, *ret_message its sentence. */
int job_flow_katapult_flash(JobWorker *w, KatapultSession *s, const JobFlowSpec *spec, const JobPayload *p,
                            char **ret_message);
/* What the Katapult session did, to the job's log. */
void job_flow_katapult_report(JobWorker *w, const KatapultSession *s, int r, bool verify);

void job_flow_board_clear(JobFlowBoard *b);
void job_flow_spec_free(JobFlowSpec *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(JobFlowSpec *, job_flow_spec_free);

/* JobWorkerFunc; userdata is the JobFlowSpec (owned by the caller, which
 * frees it after the RESULT message). */
void job_flow_run(JobWorker *w, void *userdata);
