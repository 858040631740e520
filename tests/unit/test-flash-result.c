/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The one mapping from a flash session's result to a job's error code, and
 * the flow outcome it records: the codes are part of the socket API, so
 * each session's failures must keep the code they had when every flow
 * mapped them itself. */
#include <errno.h>

#include "jobs/job-error.h"
#include "jobs/job-flow-outcome.h"
#include "util/macros.h"
#include "tests.h"
#include "util/flash-result.h"

static void test_job_error_from_flash(void)
{
        static const struct {
                const char *what;
                int r;
                JobError error;
        } cases[] = {
                { "done", FLASH_RESULT_DONE, JOB_ERROR_NONE },
                { "left", FLASH_RESULT_LEFT, JOB_ERROR_NONE },
                { "left, device gone", FLASH_RESULT_LEFT_DEVICE_GONE, JOB_ERROR_NONE },
                { "unchanged", FLASH_RESULT_UNCHANGED, JOB_ERROR_NONE },
                { "device gone", FLASH_ERR_GONE, JOB_ERROR_DEVICE_GONE },
                { "verify", FLASH_ERR_VERIFY, JOB_ERROR_VERIFY_FAILED },
                { "bootloader error", FLASH_ERR_REMOTE, JOB_ERROR_FLASH_FAILED },
                { "DFU: outside the layout", FLASH_ERR_FIT, JOB_ERROR_CHECK_FIT },
                { "DFU: sector not writable", FLASH_ERR_NOT_WRITABLE, JOB_ERROR_CHECK_FIT },
                { "Katapult: past the address space", FLASH_ERR_TOO_BIG, JOB_ERROR_CHECK_FIT },
                { "Katapult: start address", FLASH_ERR_ADDRESS, JOB_ERROR_CHECK_VECTOR_TABLE },
                { "Katapult MCU, AVR signature", FLASH_ERR_MCU, JOB_ERROR_CHECK_MCU },
                { "AVR: boot section", FLASH_ERR_BOOTLOADER_REGION, JOB_ERROR_CHECK_BOOTLOADER_REGION },
                { "AVR: no sync", FLASH_ERR_NO_BOOTLOADER, JOB_ERROR_BOOTLOADER_TIMEOUT },
                { "Katapult: no answer", -ETIMEDOUT, JOB_ERROR_FLASH_FAILED },
                { "malformed answers", -EPROTO, JOB_ERROR_FLASH_FAILED },
                { "empty image", -EINVAL, JOB_ERROR_FLASH_FAILED },
                { "PICOBOOT: stalled command", -EPIPE, JOB_ERROR_FLASH_FAILED },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                if (job_error_from_flash(cases[i].r) != cases[i].error)
                        fprintf(stderr, "case: %s\n", cases[i].what);
                CHECK_INT(job_error_from_flash(cases[i].r), cases[i].error);
        }
}

static void test_outcome(void)
{
        static const struct {
                int r;
                const char *message;
                bool cancelled;
                JobError error;
                const char *expected;
        } cases[] = {
                { FLASH_ERR_CANCELED, "ignored", true, JOB_ERROR_NONE, "cancelled during the flash" },
                { FLASH_ERR_GONE, NULL, false, JOB_ERROR_DEVICE_GONE, "the board vanished" },
                { FLASH_ERR_GONE, "gone at 0x08004000", false, JOB_ERROR_DEVICE_GONE, "gone at 0x08004000" },
                { FLASH_ERR_VERIFY, "differs", false, JOB_ERROR_VERIFY_FAILED, "differs" },
                { -EPROTO, NULL, false, JOB_ERROR_FLASH_FAILED, "Protocol error" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                FlowOutcome o = {};
                CHECK_INT(flow_outcome_flash_failed(&o, cases[i].r, cases[i].message, "during the flash"),
                          -1);
                CHECK_INT(o.cancelled, cases[i].cancelled);
                CHECK_INT(o.error, cases[i].error);
                CHECK_STR(o.message, cases[i].expected);
                /* the first failure stays the outcome */
                CHECK_INT(flow_outcome_flash_failed(&o, FLASH_ERR_REMOTE, "later", "later"), -1);
                CHECK_STR(o.message, cases[i].expected);
                free(o.message);
        }
}

int main(void)
{
        test_job_error_from_flash();
        test_outcome();
        TESTS_EXIT();
}
