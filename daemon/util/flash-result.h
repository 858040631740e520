/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What a flash session's flash call returns, the same for every
 * bootloader, so that the job maps results in one place
 * (job_error_from_flash()) whichever protocol the board speaks.
 *
 * Success is one of FlashResult. A failure is a negative errno; the ones
 * below have one meaning across sessions, anything else (-EIO: the
 * bootloader answered with an error, -ETIMEDOUT, -EPROTO, -ENOMEM, ...)
 * is a failed flash. Every session also hands back a sentence for a person.
 */

#include <errno.h>

typedef enum FlashResult {
        FLASH_RESULT_DONE = 0,             /* flashed; still in the bootloader (no leave asked) */
        FLASH_RESULT_LEFT = 1,             /* flashed, leave acknowledged: the board starts the image */
        FLASH_RESULT_LEFT_DEVICE_GONE = 2, /* flashed; the board reset before acknowledging the leave
                                            * (STM32 ROMs, Katapult): success pending its return */
        FLASH_RESULT_UNCHANGED = 3,        /* the flash already held the image: nothing written, and
                                            * the bootloader was left */
} FlashResult;

#define FLASH_ERR_GONE     (-ENODEV)    /* the device vanished */
#define FLASH_ERR_CANCELED (-ECANCELED) /* the cancel flag was set */
#define FLASH_ERR_VERIFY   (-EILSEQ)    /* read back differs from the image */
#define FLASH_ERR_REMOTE   (-EIO)       /* the bootloader reported an error */
/* Refusals before anything is erased or written: */
#define FLASH_ERR_FIT               (-ERANGE)        /* a byte lies outside the flash or its layout */
#define FLASH_ERR_NOT_WRITABLE      (-EACCES)        /* the image touches a sector that cannot be written */
#define FLASH_ERR_TOO_BIG           (-EFBIG)         /* the image passes the end of the address space */
#define FLASH_ERR_ADDRESS           (-EADDRNOTAVAIL) /* not built for the bootloader's application start */
#define FLASH_ERR_MCU               (-EMEDIUMTYPE)   /* the chip is not the one the image is for */
#define FLASH_ERR_BOOTLOADER_REGION (-EROFS) /* the image reaches into the bootloader's own section */
/* No bootloader answers: none did in its window after the reset, or it
 * stopped answering (an AVR bootloader starts the application after a
 * second without commands). */
#define FLASH_ERR_NO_BOOTLOADER (-EHOSTDOWN)
