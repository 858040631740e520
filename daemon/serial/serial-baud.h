/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Arbitrary line rates through the termios2 ioctls (TCGETS2/TCSETS2 with
 * BOTHER). Kept apart from serial-port.c because <asm/termbits.h> and
 * glibc's <termios.h> cannot be included in the same file.
 */

/* Set input and output rate to `baud` (any value the driver accepts). */
int serial_fd_set_baud_other(int fd, unsigned baud);
/* The output rate as the kernel reports it in termios2. */
int serial_fd_get_baud_other(int fd, unsigned *ret);
