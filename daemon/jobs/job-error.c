/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "jobs/job-error.h"
#include "util/flash-result.h"
#include "util/macros.h"

static const char *const job_error_table[_JOB_ERROR_MAX] = {
        [JOB_ERROR_NONE] = "none",
        [JOB_ERROR_TARGET_NOT_FOUND] = "target-not-found",
        [JOB_ERROR_TARGET_AMBIGUOUS] = "target-ambiguous",
        [JOB_ERROR_IMAGE_INVALID] = "image-invalid",
        [JOB_ERROR_IMAGE_TOO_LARGE] = "image-too-large",
        [JOB_ERROR_CHECK_FIT] = "check-fit",
        [JOB_ERROR_CHECK_VECTOR_TABLE] = "check-vector-table",
        [JOB_ERROR_CHECK_BOOTLOADER_REGION] = "check-bootloader-region",
        [JOB_ERROR_CHECK_MCU] = "check-mcu",
        [JOB_ERROR_TTY_BUSY] = "tty-busy",
        [JOB_ERROR_REBOOT_FAILED] = "reboot-failed",
        [JOB_ERROR_BOOTLOADER_TIMEOUT] = "bootloader-timeout",
        [JOB_ERROR_DEVICE_GONE] = "device-gone",
        [JOB_ERROR_FLASH_FAILED] = "flash-failed",
        [JOB_ERROR_VERIFY_FAILED] = "verify-failed",
        [JOB_ERROR_APP_TIMEOUT] = "app-timeout",
        [JOB_ERROR_STUCK_IN_BOOTLOADER] = "stuck-in-bootloader",
        [JOB_ERROR_INTERRUPTED] = "interrupted",
        [JOB_ERROR_UNSUPPORTED_DEVICE] = "unsupported-device",
        [JOB_ERROR_LAYOUT] = "layout",
        [JOB_ERROR_UNIT_CONTROL] = "unit-control",
        [JOB_ERROR_INTERNAL] = "internal",
};

static const char *const job_error_advice_table[_JOB_ERROR_MAX] = {
        [JOB_ERROR_NONE] = "",
        [JOB_ERROR_TARGET_NOT_FOUND] = "Check `flashctl list` for connected boards and pass a board name, "
                                       "port path, tty or device id.",
        [JOB_ERROR_TARGET_AMBIGUOUS] = "Several boards match; pass the port path or device id of one of "
                                       "them (see `flashctl list`).",
        [JOB_ERROR_IMAGE_INVALID] = "Pass the firmware file as its build wrote it: a raw .bin (such as "
                                    "klipper.bin), an Intel HEX .hex or a DfuSe .dfu.",
        [JOB_ERROR_IMAGE_TOO_LARGE] = "A firmware image is smaller than the flash it goes to: check that "
                                      "this is the right file.",
        [JOB_ERROR_CHECK_FIT] = "The image does not fit the writable flash at this address; check the "
                                "address and the board.",
        [JOB_ERROR_CHECK_VECTOR_TABLE] = "Rebuild the firmware with this board's bootloader offset "
                                         "(make menuconfig, \"Bootloader offset\"); "
                                         "--force vector-table overrides.",
        [JOB_ERROR_CHECK_BOOTLOADER_REGION] = "Nothing below the application offset is written or erased "
                                              "without --force bootloader-region; use it only to replace "
                                              "the bootloader itself (e.g. installing Katapult).",
        [JOB_ERROR_CHECK_MCU] =
                "The firmware was built for another MCU; rebuild it for this board (--force mcu overrides).",
        [JOB_ERROR_TTY_BUSY] =
                "Stop the program that holds the board's serial port (e.g. `systemctl stop klipper`) or set "
                "stop_units in flashd.conf.",
        [JOB_ERROR_REBOOT_FAILED] = "Put the board into its bootloader by hand (BOOT0 and reset) and retry.",
        [JOB_ERROR_BOOTLOADER_TIMEOUT] =
                "The board never appeared in its bootloader; set BOOT0 and press reset, then retry.",
        [JOB_ERROR_DEVICE_GONE] = "The board disappeared during the flash; reconnect it (it stays in its "
                                  "bootloader) and retry.",
        [JOB_ERROR_FLASH_FAILED] = "The bootloader refused the flash; retry, and check the cable and power.",
        [JOB_ERROR_VERIFY_FAILED] =
                "The read-back differs from the image; retry the flash (the board may be faulty).",
        [JOB_ERROR_APP_TIMEOUT] = "The flash succeeded but the board did not come back running the "
                                  "firmware; press reset and check "
                                  "`flashctl list`.",
        [JOB_ERROR_STUCK_IN_BOOTLOADER] = "The board came back in its bootloader, not the firmware: the "
                                          "image is probably not runnable at "
                                          "this address (or BOOT0 is still set).",
        [JOB_ERROR_INTERRUPTED] = "flashd stopped during this flash; the board is probably in its "
                                  "bootloader: submit the job again.",
        [JOB_ERROR_UNSUPPORTED_DEVICE] = "flashd cannot flash this device in its current mode.",
        [JOB_ERROR_LAYOUT] =
                "The board's flash layout could not be trusted; check the board database entry.",
        [JOB_ERROR_UNIT_CONTROL] =
                "A configured systemd unit could not be stopped or started; check `systemctl status`.",
        [JOB_ERROR_INTERNAL] = "An internal error; see the daemon's log (journalctl -u flashd).",
};

const char *job_error_to_string(JobError e)
{
        if (e < 0 || e >= _JOB_ERROR_MAX)
                return NULL;
        return job_error_table[e];
}

JobError job_error_from_string(const char *s)
{
        return (JobError)string_table_lookup(job_error_table, _JOB_ERROR_MAX, s);
}

const char *job_error_advice(JobError e)
{
        if (e < 0 || e >= _JOB_ERROR_MAX)
                return NULL;
        return job_error_advice_table[e];
}

int job_error_is_check(JobError e)
{
        return e == JOB_ERROR_CHECK_FIT || e == JOB_ERROR_CHECK_VECTOR_TABLE ||
               e == JOB_ERROR_CHECK_BOOTLOADER_REGION || e == JOB_ERROR_CHECK_MCU;
}

JobError job_error_from_flash(int r)
{
        switch (r) {
        case FLASH_ERR_GONE:
                return JOB_ERROR_DEVICE_GONE;
        case FLASH_ERR_VERIFY:
                return JOB_ERROR_VERIFY_FAILED;
        case FLASH_ERR_FIT:
        case FLASH_ERR_NOT_WRITABLE:
        case FLASH_ERR_TOO_BIG:
                return JOB_ERROR_CHECK_FIT;
        case FLASH_ERR_ADDRESS:
                return JOB_ERROR_CHECK_VECTOR_TABLE;
        case FLASH_ERR_MCU:
                return JOB_ERROR_CHECK_MCU;
        case FLASH_ERR_BOOTLOADER_REGION:
                return JOB_ERROR_CHECK_BOOTLOADER_REGION;
        case FLASH_ERR_NO_BOOTLOADER:
                return JOB_ERROR_BOOTLOADER_TIMEOUT;
        default:
                return r >= 0 ? JOB_ERROR_NONE : JOB_ERROR_FLASH_FAILED;
        }
}
