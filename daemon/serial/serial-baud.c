/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <asm/ioctls.h>
#include <asm/termbits.h>
#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "serial/serial-baud.h"

/* Issue the ioctl as a plain syscall, exactly as glibc's tcsetattr() does
 * for TCSETS: termios requests then reach the terminal itself even under
 * an LD_PRELOAD device emulator (umockdev routes ioctl() calls on emulated
 * ttys to its handler, which answers ENOTTY for termios requests). */
static int termios2_ioctl(int fd, unsigned long req, struct termios2 *t)
{
        if (syscall(SYS_ioctl, fd, req, t) < 0)
                return -errno;
        return 0;
}

int serial_fd_set_baud_other(int fd, unsigned baud)
{
        struct termios2 t;
        int r;

        if (baud == 0)
                return -EINVAL;
        r = termios2_ioctl(fd, TCGETS2, &t);
        if (r < 0)
                return r;
        t.c_cflag &= ~(tcflag_t)(CBAUD | (CBAUD << IBSHIFT));
        t.c_cflag |= BOTHER | (BOTHER << IBSHIFT);
        t.c_ispeed = baud;
        t.c_ospeed = baud;
        r = termios2_ioctl(fd, TCSETS2, &t);
        if (r < 0)
                return r;
        /* The driver rounds to what it can do; a rate it cannot approach
         * at all comes back as something else entirely. */
        r = termios2_ioctl(fd, TCGETS2, &t);
        if (r < 0)
                return r;
        if (t.c_ospeed == 0)
                return -EINVAL;
        return 0;
}

int serial_fd_get_baud_other(int fd, unsigned *ret)
{
        struct termios2 t;
        int r;

        r = termios2_ioctl(fd, TCGETS2, &t);
        if (r < 0)
                return r;
        *ret = t.c_ospeed;
        return 0;
}
