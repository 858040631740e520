/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Stable failure codes of flash jobs. The numbers are part of the socket API
 * (proto/API.md, "Jobs"): never renumber, only append. Each code has a short
 * name for scripts and a sentence for a person that says what to do.
 */

#include <errno.h>

typedef enum JobError {
        JOB_ERROR_NONE = 0,
        JOB_ERROR_TARGET_NOT_FOUND = 1,
        JOB_ERROR_TARGET_AMBIGUOUS = 2,
        JOB_ERROR_IMAGE_INVALID = 3,
        JOB_ERROR_IMAGE_TOO_LARGE = 4,
        JOB_ERROR_CHECK_FIT = 5,
        JOB_ERROR_CHECK_VECTOR_TABLE = 6,
        JOB_ERROR_CHECK_BOOTLOADER_REGION = 7,
        JOB_ERROR_CHECK_MCU = 8,
        JOB_ERROR_TTY_BUSY = 9,
        JOB_ERROR_REBOOT_FAILED = 10,
        JOB_ERROR_BOOTLOADER_TIMEOUT = 11,
        JOB_ERROR_DEVICE_GONE = 12,
        JOB_ERROR_FLASH_FAILED = 13,
        JOB_ERROR_VERIFY_FAILED = 14,
        JOB_ERROR_APP_TIMEOUT = 15,
        JOB_ERROR_STUCK_IN_BOOTLOADER = 16,
        JOB_ERROR_INTERRUPTED = 17,
        JOB_ERROR_UNSUPPORTED_DEVICE = 18,
        JOB_ERROR_LAYOUT = 19,
        JOB_ERROR_UNIT_CONTROL = 20,
        JOB_ERROR_INTERNAL = 21,
        _JOB_ERROR_MAX,
        _JOB_ERROR_INVALID = -EINVAL,
} JobError;

/* "target-not-found", ... ("none" for JOB_ERROR_NONE). */
const char *job_error_to_string(JobError e);
JobError job_error_from_string(const char *s);
/* What a person should do about it (one sentence, no trailing newline). */
const char *job_error_advice(JobError e);
/* The code for a flash session's failure (r < 0, util/flash-result.h), the
 * same for every bootloader. A cancel (FLASH_ERR_CANCELED) is not a
 * failure: callers record it as such before asking. */
JobError job_error_from_flash(int r);
/* True for the safety checks that refuse an image before anything is erased. */
int job_error_is_check(JobError e);
