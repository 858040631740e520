/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "util/macros.h"
#include "serial/serial-baud.h"
#include "serial/serial-port.h"
#include "util/time-util.h"

#define SERIAL_PORT_OPEN_RETRY_NSEC (20 * 1000 * 1000)

struct SerialPort {
        SerialTransport transport; /* first: the ops receive &port->transport */
        int fd;
        bool is_tty;
        char *path; /* as opened; NULL for wrapped fds */
};

static int poll_timeout_ms(uint64_t deadline)
{
        uint64_t n = now_usec(CLOCK_MONOTONIC);
        if (n >= deadline)
                return 0;
        /* Round up so a short remaining wait does not turn into a busy loop. */
        return (int)MIN((deadline - n + 999) / 1000, (uint64_t)INT32_MAX);
}

/*
 * read() returning 0 is a hangup for a socket, but a tty whose termios has
 * VMIN = VTIME = 0 (someone else's settings, when opened with baud 0) also
 * answers 0 when it is merely empty. Ask poll() which it is.
 */
static bool hung_up(int fd)
{
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        if (poll(&pfd, 1, 0) < 0)
                return false;
        return pfd.revents & (POLLHUP | POLLERR | POLLNVAL);
}

/* Errors that mean the device is gone (USB unplug, pty master closed). */
static bool errno_is_gone(int e)
{
        return e == EIO || e == ENXIO || e == ENODEV || e == EPIPE || e == ECONNRESET || e == EBADF;
}

/*
 * After a silent timeout: has the device node gone away? A USB tty that is
 * unplugged normally hangs up at once (EIO), but a line that just goes
 * quiet (an emulated board whose pty outlives it, a bridge that keeps the
 * fd alive) only shows it by its node disappearing with the device.
 */
static bool node_gone(const SerialPort *p)
{
        struct stat st;
        return p->path && stat(p->path, &st) < 0 && errno == ENOENT;
}

/* poll() for `events` until `deadline`: 0 and the revents, -ETIMEDOUT, or -errno. */
static int wait_fd(int fd, short events, uint64_t deadline, short *ret_revents)
{
        for (;;) {
                struct pollfd pfd = { .fd = fd, .events = events };
                int timeout = poll_timeout_ms(deadline);
                if (timeout == 0)
                        return -ETIMEDOUT;
                int r = poll(&pfd, 1, timeout);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return -errno;
                if (r == 0)
                        return -ETIMEDOUT;
                *ret_revents = pfd.revents;
                return 0;
        }
}

static ssize_t port_read(SerialTransport *t, void *buf, size_t size, uint64_t timeout_usec)
{
        SerialPort *p = (SerialPort *)t;
        uint64_t deadline = now_usec(CLOCK_MONOTONIC) + timeout_usec;

        for (;;) {
                ssize_t n = read(p->fd, buf, size);
                if (n > 0)
                        return n;
                if (n == 0 && hung_up(p->fd))
                        return -ENODEV;
                if (n == 0) {
                        /* VMIN = 0 line: poll() would report it readable
                         * at once; pace the loop instead of spinning. */
                        if (now_usec(CLOCK_MONOTONIC) >= deadline)
                                return -ETIMEDOUT;
                        struct timespec ts = { .tv_nsec = 1000 * 1000 };
                        nanosleep(&ts, NULL);
                        continue;
                }
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno != EAGAIN)
                        return errno_is_gone(errno) ? -ENODEV : -errno;

                short revents;
                int r = wait_fd(p->fd, POLLIN, deadline, &revents);
                if (r == -ETIMEDOUT && node_gone(p))
                        return -ENODEV;
                if (r < 0)
                        return r;
                if (revents & POLLNVAL)
                        return -ENODEV;
                /* POLLHUP/POLLERR: the next read() tells (data may still be queued). */
        }
}

static int port_write(SerialTransport *t, const void *buf, size_t size, uint64_t timeout_usec)
{
        SerialPort *p = (SerialPort *)t;
        const uint8_t *b = buf;
        uint64_t deadline = now_usec(CLOCK_MONOTONIC) + timeout_usec;

        while (size > 0) {
                ssize_t n = write(p->fd, b, size);
                if (n > 0) {
                        b += n;
                        size -= (size_t)n;
                        continue;
                }
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno != EAGAIN)
                        return errno_is_gone(errno) ? -ENODEV : -errno;

                short revents;
                int r = wait_fd(p->fd, POLLOUT, deadline, &revents);
                if (r == -ETIMEDOUT && node_gone(p))
                        return -ENODEV;
                if (r < 0)
                        return r;
                if (revents & (POLLHUP | POLLERR | POLLNVAL))
                        return -ENODEV;
        }
        return 0;
}

static int port_flush_input(SerialTransport *t)
{
        SerialPort *p = (SerialPort *)t;
        uint8_t scratch[256];

        if (p->is_tty)
                (void)tcflush(p->fd, TCIFLUSH);
        /* Also drain what the fd holds right now (a socketpair has no tcflush). */
        for (;;) {
                ssize_t n = read(p->fd, scratch, sizeof(scratch));
                if (n > 0)
                        continue;
                if (n == 0)
                        return hung_up(p->fd) ? -ENODEV : 0;
                if (errno == EINTR)
                        continue;
                if (errno == EAGAIN)
                        return 0;
                return errno_is_gone(errno) ? -ENODEV : -errno;
        }
}

static const SerialTransportOps port_ops = {
        .kind = "tty",
        .read = port_read,
        .write = port_write,
        .flush_input = port_flush_input,
};

static const SerialTransportOps fd_ops = {
        .kind = "fd",
        .read = port_read,
        .write = port_write,
        .flush_input = port_flush_input,
};

static const struct {
        unsigned baud;
        speed_t speed;
} standard_rates[] = {
        { 300, B300 },         { 600, B600 },         { 1200, B1200 },       { 2400, B2400 },
        { 4800, B4800 },       { 9600, B9600 },       { 19200, B19200 },     { 38400, B38400 },
        { 57600, B57600 },     { 115200, B115200 },   { 230400, B230400 },   { 460800, B460800 },
        { 500000, B500000 },   { 576000, B576000 },   { 921600, B921600 },   { 1000000, B1000000 },
        { 1152000, B1152000 }, { 1500000, B1500000 }, { 2000000, B2000000 }, { 3000000, B3000000 },
};

unsigned serial_baud_to_speed(unsigned baud)
{
        for (size_t i = 0; i < ELEMENTSOF(standard_rates); i++)
                if (standard_rates[i].baud == baud)
                        return standard_rates[i].speed;
        return 0;
}

static unsigned speed_to_baud(speed_t speed)
{
        for (size_t i = 0; i < ELEMENTSOF(standard_rates); i++)
                if (standard_rates[i].speed == speed)
                        return standard_rates[i].baud;
        return 0;
}

int serial_port_set_baud(SerialPort *p, unsigned baud)
{
        struct termios t;
        speed_t speed = serial_baud_to_speed(baud);

        if (baud == 0)
                return -EINVAL;
        if (speed == 0)
                /* 250000 (Klipper's default UART rate) and friends. */
                return serial_fd_set_baud_other(p->fd, baud);

        /* glibc's tcsetattr(): a standard Bxxx rate, visible as such to
         * whoever watches the line (a USB CDC device sees the line coding;
         * an emulator's pty master sees the termios change). */
        if (tcgetattr(p->fd, &t) < 0)
                return -errno;
        if (cfsetispeed(&t, speed) < 0 || cfsetospeed(&t, speed) < 0)
                return -EINVAL;
        if (tcsetattr(p->fd, TCSANOW, &t) < 0)
                return -errno;
        return 0;
}

int serial_port_get_baud(SerialPort *p, unsigned *ret)
{
        struct termios t;

        if (tcgetattr(p->fd, &t) < 0)
                return -errno;
        unsigned b = speed_to_baud(cfgetospeed(&t));
        if (b == 0)
                return serial_fd_get_baud_other(p->fd, ret);
        *ret = b;
        return 0;
}

static int make_raw(int fd)
{
        struct termios t;

        if (tcgetattr(fd, &t) < 0)
                return -errno;
        cfmakeraw(&t);
        t.c_cflag |= CLOCAL | CREAD;
        t.c_cflag &= ~(tcflag_t)(CSTOPB | CRTSCTS);
        t.c_iflag &= ~(tcflag_t)(IXON | IXOFF | IXANY);
        /* With O_NONBLOCK, VMIN = 1 makes an empty line answer EAGAIN
         * (VMIN = 0 would answer 0, which looks like a hangup). */
        t.c_cc[VMIN] = 1;
        t.c_cc[VTIME] = 0;
        if (tcsetattr(fd, TCSANOW, &t) < 0)
                return -errno;
        return 0;
}

int serial_port_open(SerialPort **ret, const char *path, unsigned baud)
{
        _cleanup_(serial_port_freep) SerialPort *p = NULL;
        int fd, r;

        fd = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0)
                return -errno;

        r = serial_port_new_from_fd(&p, fd);
        if (r < 0) {
                safe_close(fd);
                return r;
        }
        p->transport.ops = &port_ops;
        p->is_tty = true;
        p->path = strdup(path);
        if (!p->path)
                return -ENOMEM;

        if (baud > 0) {
                r = make_raw(p->fd);
                if (r < 0)
                        return r;
                r = serial_port_set_baud(p, baud);
                if (r < 0)
                        return r;
                (void)tcflush(p->fd, TCIOFLUSH);
        }

        *ret = TAKE_PTR(p);
        return 0;
}

/* Right after a re-enumeration the tty may not be usable yet although the
 * USB device is announced: the node is still being created (ENOENT), or
 * the ACM driver is not bound to it yet (ENXIO/ENODEV/EIO). */
static bool open_error_transient(int r)
{
        return r == -ENOENT || r == -ENXIO || r == -ENODEV || r == -EIO;
}

int serial_port_open_wait(SerialPort **ret, const char *path, unsigned baud, uint64_t timeout_usec,
                          const atomic_bool *cancel)
{
        uint64_t deadline = now_usec(CLOCK_MONOTONIC) + timeout_usec;
        int r;

        for (;;) {
                r = serial_port_open(ret, path, baud);
                if (r >= 0 || !open_error_transient(r) || now_usec(CLOCK_MONOTONIC) >= deadline)
                        return r;
                if (cancel && atomic_load(cancel))
                        return -ECANCELED;
                (void)nanosleep(&(struct timespec){ .tv_nsec = SERIAL_PORT_OPEN_RETRY_NSEC }, NULL);
        }
}

int serial_port_lock(SerialPort *p)
{
        /* The lock pyserial's exclusive=True takes (klippy, flashtool.py):
         * they cannot open the port while we hold it, and we see theirs. */
        if (flock(p->fd, LOCK_EX | LOCK_NB) < 0)
                return errno == EWOULDBLOCK ? -EBUSY : -errno;
        return 0;
}

int serial_port_new_from_fd(SerialPort **ret, int fd)
{
        SerialPort *p;
        int flags;

        if (fd < 0)
                return -EBADF;
        flags = fcntl(fd, F_GETFL);
        if (flags < 0)
                return -errno;
        if (!(flags & O_NONBLOCK) && fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
                return -errno;
        if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
                return -errno;

        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->transport.ops = &fd_ops;
        p->fd = fd;
        *ret = p;
        return 0;
}

SerialPort *serial_port_free(SerialPort *p)
{
        if (!p)
                return NULL;
        safe_close(p->fd);
        free(p->path);
        free(p);
        return NULL;
}

SerialTransport *serial_port_get_transport(SerialPort *p)
{
        return &p->transport;
}

int serial_port_get_fd(SerialPort *p)
{
        return p->fd;
}

int serial_port_set_modem_lines(SerialPort *p, int lines, bool on)
{
        /* Through ioctl() (not a raw syscall): an emulator that models the
         * modem lines sees these requests. */
        if (ioctl(p->fd, on ? TIOCMBIS : TIOCMBIC, &lines) < 0)
                return -errno;
        return 0;
}

int serial_port_drain(SerialPort *p, uint64_t timeout_usec)
{
        uint64_t deadline = now_usec(CLOCK_MONOTONIC) + timeout_usec;

        /* tcdrain() has no timeout; poll the output queue instead (there is
         * no event for "transmitter empty"). */
        for (;;) {
                int queued = 0;
                if (ioctl(p->fd, TIOCOUTQ, &queued) < 0)
                        /* Cannot tell (pty under an emulator, socket): the
                         * data has been handed over, that is all we know. */
                        return errno == ENOTTY || errno == EINVAL ? 0 : -errno;
                if (queued <= 0)
                        return 0;
                if (now_usec(CLOCK_MONOTONIC) >= deadline)
                        return -ETIMEDOUT;
                struct timespec ts = { .tv_nsec = 5 * 1000 * 1000 };
                nanosleep(&ts, NULL);
        }
}
