/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The safety checks before anything is erased, shared by job submission
 * (against the board database's layout, so a wrong image is refused before
 * the board is even rebooted) and the flow (again against the layout the
 * bootloader itself reports). Wraps codec/flash-image and codec/image-check;
 * no I/O, no logging: notes (forced checks, the address used) go to `note`.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jobs/job-error.h"
#include "codec/flash-image.h"
#include "jobs/job-board.h"

/* A checked image and what the checks learnt about it beyond its bytes. */
typedef struct JobPayload {
        FlashImage *image;  /* what the session writes */
        const char *format; /* "bin", "hex", "dfu", "uf2" (static): uf2 is parsed into a FlashImage */
        uint32_t address;   /* where the lowest byte goes (flash_image_get_address()) */
        uint64_t size;      /* bytes of data over all segments (flash_image_get_size()) */
        char *mcu;          /* Klipper's config.MCU from the embedded dictionary, or NULL */
} JobPayload;

JobPayload *job_payload_free(JobPayload *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(JobPayload *, job_payload_free);

typedef void (*JobCheckNote)(void *userdata, const char *line);

typedef struct JobCheckInput {
        const uint8_t *data;
        size_t size;
        const char *format; /* NULL: detect */
        uint32_t address;
        bool has_address;
        unsigned force;            /* 1 << ImageCheck */
        bool mass_erase;           /* erases the bootloader region too: needs its force */
        const JobFlowBoard *board; /* NULL when unknown */
        const DfuseLayout *layout; /* the layout the bootloader reports; NULL: the board's fallback */
        const char *device_mcu;    /* MCU the bootloader reports (Katapult), or NULL */
        /* flashd opened the file for the client by path: refusals must not
         * echo its bytes (the open is checked, but a file whose mode bits
         * say more than its real access rules must not leak through here) */
        bool hide_bytes;
} JobCheckInput;

/*
 * Parse the image and run the checks. Returns 0 and the parsed image (its
 * address resolved: explicit, from the file, or flash base + application
 * offset) or a negative errno with *ret_error and *ret_message (malloc'd).
 */
int job_check_image(const JobCheckInput *in, JobCheckNote note, void *userdata, JobPayload **ret_payload,
                    JobError *ret_error, char **ret_message);
