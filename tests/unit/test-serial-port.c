/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The serial port over a real pty pair, the bootloader requests as the pty
 * master sees them, and the tty holder scan over a fake /proc tree.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "util/macros.h"
#include "serial/bootloader-request.h"
#include "serial/serial-port.h"
#include "tests.h"

static int open_pty(char *slave, size_t size)
{
        int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (m < 0 || grantpt(m) < 0 || unlockpt(m) < 0 || ptsname_r(m, slave, size) != 0)
                return -errno;
        return m;
}

static ssize_t read_master(int m, uint8_t *buf, size_t size, int timeout_ms)
{
        size_t n = 0;
        while (n < size) {
                struct pollfd p = { .fd = m, .events = POLLIN };
                if (poll(&p, 1, timeout_ms) <= 0)
                        break;
                ssize_t k = read(m, buf + n, size - n);
                if (k <= 0)
                        break;
                n += (size_t)k;
        }
        return (ssize_t)n;
}

static uint64_t now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void test_port(void)
{
        static const unsigned rates[] = { 1200, 115200, 250000, 500000, 1000000, 31250 };
        char slave[128];
        int m = open_pty(slave, sizeof(slave));
        CHECK(m >= 0);

        for (size_t i = 0; i < ELEMENTSOF(rates); i++) {
                _cleanup_(serial_port_freep) SerialPort *p = NULL;
                unsigned b = 0;
                CHECK_INT(serial_port_open(&p, slave, rates[i]), 0);
                if (!p)
                        continue;
                CHECK_INT(serial_port_get_baud(p, &b), 0);
                CHECK_INT(b, rates[i]);
                /* raw: no echo, no translation */
                struct termios t;
                CHECK_INT(tcgetattr(serial_port_get_fd(p), &t), 0);
                CHECK(!(t.c_lflag & (ECHO | ICANON)));
                CHECK(!(t.c_oflag & OPOST));
                CHECK(fcntl(serial_port_get_fd(p), F_GETFD) & FD_CLOEXEC);
                CHECK(fcntl(serial_port_get_fd(p), F_GETFL) & O_NONBLOCK);
        }

        _cleanup_(serial_port_freep) SerialPort *p = NULL;
        CHECK_INT(serial_port_open(&p, slave, 250000), 0);
        SerialTransport *t = serial_port_get_transport(p);

        /* both directions, binary safe */
        static const uint8_t msg[] = { 0x01, 0x88, 0x11, 0x00, 0x0a, 0x0d, 0x03, 0x99, 0x00, 0xff };
        CHECK_INT(serial_transport_write(t, msg, sizeof(msg), 1000000), 0);
        uint8_t got[64];
        CHECK_INT(read_master(m, got, sizeof(msg), 1000), sizeof(msg));
        CHECK(memcmp(got, msg, sizeof(msg)) == 0);

        CHECK_INT(write(m, msg, sizeof(msg)), sizeof(msg));
        size_t n = 0;
        while (n < sizeof(msg)) {
                ssize_t k = serial_transport_read(t, got + n, sizeof(got) - n, 1000000);
                CHECK(k > 0);
                if (k <= 0)
                        break;
                n += (size_t)k;
        }
        CHECK(memcmp(got, msg, sizeof(msg)) == 0);

        /* a timeout is a timeout, and takes about as long as asked */
        uint64_t t0 = now_ms();
        CHECK_INT(serial_transport_read(t, got, sizeof(got), 50000), -ETIMEDOUT);
        uint64_t dt = now_ms() - t0;
        CHECK(dt >= 45 && dt < 1000);

        /* flush drops what is queued */
        CHECK_INT(write(m, msg, sizeof(msg)), sizeof(msg));
        struct timespec ts = { .tv_nsec = 20 * 1000 * 1000 };
        nanosleep(&ts, NULL);
        CHECK_INT(serial_transport_flush_input(t), 0);
        CHECK_INT(serial_transport_read(t, got, sizeof(got), 20000), -ETIMEDOUT);

        /* the other side goes away: -ENODEV, for reads and writes */
        close(m);
        CHECK_INT(serial_transport_read(t, got, sizeof(got), 1000000), -ENODEV);
        CHECK_INT(serial_transport_write(t, msg, sizeof(msg), 1000000), -ENODEV);

        SerialPort *q = NULL;
        CHECK_INT(serial_port_open(&q, "/nonexistent/ttyACM9", 115200), -ENOENT);
        CHECK(q == NULL);
        /* not a tty */
        CHECK_INT(serial_port_open(&q, "/dev/null", 115200), -ENOTTY);
}

/* A line that goes quiet while its node disappears (a bridge or emulator
 * that keeps the fd alive) is a device that went away, not a timeout. */
static void test_node_gone(void)
{
        char slave[128], dir[] = "/tmp/test-serial-node-XXXXXX", link[256];
        int m = open_pty(slave, sizeof(slave));
        CHECK(m >= 0);
        CHECK(mkdtemp(dir) != NULL);
        snprintf(link, sizeof(link), "%s/ttyACM7", dir);
        CHECK_INT(symlink(slave, link), 0);

        _cleanup_(serial_port_freep) SerialPort *p = NULL;
        CHECK_INT(serial_port_open(&p, link, 115200), 0);
        uint8_t buf[8];
        CHECK_INT(serial_transport_read(serial_port_get_transport(p), buf, sizeof(buf), 20000), -ETIMEDOUT);
        CHECK_INT(unlink(link), 0);
        CHECK_INT(serial_transport_read(serial_port_get_transport(p), buf, sizeof(buf), 20000), -ENODEV);
        CHECK_INT(rmdir(dir), 0);
        close(m);
}

static void test_request_uart(void)
{
        char slave[128];
        int m = open_pty(slave, sizeof(slave));
        CHECK(m >= 0);

        CHECK_INT(bootloader_request_uart(slave, 0), 0);
        uint8_t got[64];
        ssize_t n = read_master(m, got, sizeof(got), 200);
        /* the sync byte and Klipper's 32-byte block, nothing else */
        CHECK_INT(n, 33);
        CHECK_INT(got[0], '~');
        CHECK(memcmp(got + 1, " \x1c Request Serial Bootloader!! ~", 32) == 0);

        /* at 250000 baud, which stays set on the line */
        _cleanup_(serial_port_freep) SerialPort *p = NULL;
        unsigned b = 0;
        CHECK_INT(serial_port_open(&p, slave, 0), 0);
        CHECK_INT(serial_port_get_baud(p, &b), 0);
        CHECK_INT(b, 250000);

        CHECK_INT(bootloader_request_uart(slave, 115200), 0);
        CHECK_INT(read_master(m, got, sizeof(got), 200), 33);
        CHECK_INT(serial_port_get_baud(p, &b), 0);
        CHECK_INT(b, 115200);
        close(m);
}

static void test_request_usb(void)
{
        char slave[128];
        int m = open_pty(slave, sizeof(slave));
        CHECK(m >= 0);

        /* What the virtual board does to see the request (notes/emulation.md):
         * packet mode plus EXTPROC makes every termios change readable on
         * the master as a TIOCPKT_IOCTL status byte. */
        int one = 1;
        CHECK_INT(ioctl(m, TIOCPKT, &one), 0);
        struct termios t;
        CHECK_INT(tcgetattr(m, &t), 0);
        t.c_lflag |= EXTPROC;
        cfsetspeed(&t, B115200);
        CHECK_INT(tcsetattr(m, TCSANOW, &t), 0);
        uint8_t junk[16];
        read_master(m, junk, sizeof(junk), 20);

        /* a pty has no DTR: not an error, the rate change is the request */
        CHECK_INT(bootloader_request_usb(slave), 0);
        uint8_t st[8];
        ssize_t n = read_master(m, st, 1, 500);
        CHECK_INT(n, 1);
        CHECK(st[0] & TIOCPKT_IOCTL);
        CHECK_INT(tcgetattr(m, &t), 0);
        CHECK_INT(cfgetospeed(&t), B1200);
        /* and nothing was written to the line */
        CHECK_INT(read_master(m, junk, sizeof(junk), 50), 0);
        close(m);

        CHECK_INT(bootloader_request_usb("/nonexistent/ttyACM9"), -ENOENT);
}

static void write_file(const char *dir, const char *name, const char *data, size_t len)
{
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        CHECK(fd >= 0);
        CHECK_INT(write(fd, data, len), (ssize_t)len);
        close(fd);
}

static void make_proc(const char *root, int pid, const char *comm, const char *cmdline, size_t cmdline_len,
                      const char *cgroup, const char *fd_target)
{
        char dir[512], path[600];
        snprintf(dir, sizeof(dir), "%s/%d", root, pid);
        CHECK_INT(mkdir(dir, 0755), 0);
        write_file(dir, "comm", comm, strlen(comm));
        write_file(dir, "cmdline", cmdline, cmdline_len);
        if (cgroup)
                write_file(dir, "cgroup", cgroup, strlen(cgroup));
        if (fd_target) {
                snprintf(path, sizeof(path), "%s/fd", dir);
                CHECK_INT(mkdir(path, 0755), 0);
                snprintf(path, sizeof(path), "%s/fd/0", dir);
                CHECK_INT(symlink("/dev/zero", path), 0);
                snprintf(path, sizeof(path), "%s/fd/7", dir);
                CHECK_INT(symlink(fd_target, path), 0);
        }
}

static void test_holder(void)
{
        char root[] = "/tmp/test-serial-port-XXXXXX";
        CHECK(mkdtemp(root) != NULL);

        static const char klippy[] = "/home/pi/klippy-env/bin/python\0/home/pi/klipper/klippy/klippy.py\0"
                                     "/home/pi/printer_data/config/printer.cfg\0-l\0/tmp/klippy.log";
        make_proc(root, 812, "python", klippy, sizeof(klippy), "0::/system.slice/klipper.service\n",
                  "/dev/null");
        static const char screen[] = "screen\0/dev/full\0"
                                     "250000";
        make_proc(root, 4242, "screen", screen, sizeof(screen),
                  "0::/user.slice/user-1000.slice/session-3.scope\n", "/dev/full");
        make_proc(root, 99, "kthreadd", "", 0, NULL, NULL); /* no fd dir */
        /* python3 -c: the code is no script name; -m: the module is the program */
        static const char pyc[] = "python3\0-c\0import os; fd = open(\"/dev/ttyACM0\",\"rb\",buffering=0); "
                                  "os.read(fd.fileno(), 1)";
        make_proc(root, 555, "python3", pyc, sizeof(pyc), "0::/user.slice\n", "/dev/urandom");
        static const char pym[] =
                "/usr/bin/python3\0-u\0-W\0ignore\0-m\0serial.tools.miniterm\0/dev/ttyACM0";
        make_proc(root, 556, "python3", pym, sizeof(pym), "0::/user.slice\n", "/dev/tty");
        char selfdir[600];
        snprintf(selfdir, sizeof(selfdir), "%s/self", root);
        CHECK_INT(mkdir(selfdir, 0755), 0);

        static const struct {
                const char *tty;
                pid_t exclude;
                int expected;
                pid_t pid;
                const char *name, *unit, *message;
        } cases[] = {
                { "/dev/null", 0, 1, 812, "klippy", "klipper.service",
                  "/dev/null is in use by klippy (pid 812, klipper.service): stop klipper.service, or let "
                  "flashd stop it during a flash: stop_units = klipper.service in /etc/flashd/flashd.conf" },
                { "/dev/full", 0, 1, 4242, "screen", "",
                  "/dev/full is in use by screen (pid 4242): stop that program first" },
                { "/dev/full", 4242, 0 },
                { "/dev/urandom", 0, 1, 555, "python3", "",
                  "/dev/urandom is in use by python3 (pid 555): stop that program first" },
                { "/dev/tty", 0, 1, 556, "serial.tools.miniterm", "",
                  "/dev/tty is in use by serial.tools.miniterm (pid 556): stop that program first" },
                /* everyone has /dev/zero open as fd 0, but nobody holds /dev/random */
                { "/dev/random", 0, 0 },
                { "/nonexistent/ttyACM0", 0, -ENOENT },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                TtyHolder h = {};
                int r = tty_find_holder(root, cases[i].tty, cases[i].exclude, &h);
                CHECK_INT(r, cases[i].expected);
                if (r <= 0)
                        continue;
                CHECK_INT(h.pid, cases[i].pid);
                CHECK_STR(h.name, cases[i].name);
                CHECK_STR(h.unit, cases[i].unit);
                char *msg = tty_holder_describe(&h, cases[i].tty);
                CHECK_STR(msg, cases[i].message);
                free(msg);
        }

        /* The real /proc: a child holds the pty slave; we hold its master,
         * which makes us the other end of the line, not a user. */
        char slave[128];
        int m = open_pty(slave, sizeof(slave));
        int ready[2];
        CHECK_INT(pipe2(ready, O_CLOEXEC), 0);
        pid_t child = fork();
        if (child == 0) {
                close(m); /* only the slave, like a program using the port */
                int s = open(slave, O_RDWR | O_NOCTTY | O_CLOEXEC);
                char c = s >= 0 ? 'y' : 'n';
                (void)!write(ready[1], &c, 1);
                pause();
                _exit(0);
        }
        char c = 0;
        CHECK_INT(read(ready[0], &c, 1), 1);
        CHECK_INT(c, 'y');
        TtyHolder h = {};
        CHECK_INT(tty_find_holder("/proc", slave, 0, &h), 1);
        CHECK_INT(h.pid, child);
        CHECK(h.comm[0] != 0);
        CHECK_INT(tty_find_holder("/proc", slave, child, &h), 0);
        /* we open it too: now we are a user as well (but not first in line
         * when excluded) */
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        CHECK_INT(tty_find_holder("/proc", slave, 0, &h), 0);
        int s = open(slave, O_RDWR | O_NOCTTY | O_CLOEXEC);
        CHECK(s >= 0);
        /* holding master and slave: still the line's owner, not reported */
        CHECK_INT(tty_find_holder("/proc", slave, 0, &h), 0);
        close(s);
        close(m);
        close(ready[0]);
        close(ready[1]);

        char cmd[600];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
        CHECK_INT(system(cmd), 0);
}

/* The permission-free probe over a pty, and tty_check_use() over fake /proc
 * trees: a locked port whose holder flashd may not see is "locked", an
 * unlocked one with unreadable processes is "unknown", never "free". */
static void test_lock_probe(void)
{
        char slave[128];
        int m = open_pty(slave, sizeof(slave));
        CHECK(m >= 0);
        int s = open(slave, O_RDWR | O_NOCTTY | O_CLOEXEC);
        CHECK(s >= 0);

        CHECK_INT(tty_probe_locked(slave), 0);
        /* pyserial Serial(exclusive=True), as klippy opens its port */
        CHECK_INT(flock(s, LOCK_EX | LOCK_NB), 0);
        CHECK_INT(tty_probe_locked(slave), 1);
        CHECK_INT(flock(s, LOCK_UN), 0);
        CHECK_INT(tty_probe_locked(slave), 0);
        /* the probe's own lock went with its fd: we can lock again */
        CHECK_INT(flock(s, LOCK_EX | LOCK_NB), 0);
        CHECK_INT(flock(s, LOCK_UN), 0);

        /* serial_port_lock(): ours is seen by the probe, theirs by us */
        {
                SerialPort *port = NULL;
                CHECK_INT(serial_port_open(&port, slave, 250000), 0);
                CHECK_INT(serial_port_lock(port), 0);
                CHECK_INT(tty_probe_locked(slave), 1);
                CHECK(flock(s, LOCK_EX | LOCK_NB) < 0);
                serial_port_free(port);
                CHECK_INT(tty_probe_locked(slave), 0);
                CHECK_INT(flock(s, LOCK_EX | LOCK_NB), 0);
                CHECK_INT(serial_port_open(&port, slave, 250000), 0);
                CHECK_INT(serial_port_lock(port), -EBUSY);
                serial_port_free(port);
                CHECK_INT(flock(s, LOCK_UN), 0);
        }

        /* a lock held by another process (klippy's) */
        int ready[2];
        CHECK_INT(pipe2(ready, O_CLOEXEC), 0);
        pid_t child = fork();
        if (child == 0) {
                int c_fd = open(slave, O_RDWR | O_NOCTTY | O_CLOEXEC);
                char c = c_fd >= 0 && flock(c_fd, LOCK_EX | LOCK_NB) == 0 ? 'y' : 'n';
                (void)!write(ready[1], &c, 1);
                pause();
                _exit(0);
        }
        char c = 0;
        CHECK_INT(read(ready[0], &c, 1), 1);
        CHECK_INT(c, 'y');
        CHECK_INT(tty_probe_locked(slave), 1);

        /* A fake /proc where one process cannot be looked at (its fd/ is
         * not a directory we can open, as EACCES would be for flashd). */
        char root[] = "/tmp/test-serial-lock-XXXXXX";
        CHECK(mkdtemp(root) != NULL);
        char dir[600];
        snprintf(dir, sizeof(dir), "%s/812", root);
        CHECK_INT(mkdir(dir, 0755), 0);
        write_file(dir, "comm", "python", 6);
        write_file(dir, "fd", "", 0);

        TtyUse use = _TTY_USE_INVALID;
        unsigned unreadable = 99;
        TtyHolder h = {};
        CHECK_INT(tty_check_use(root, slave, 0, &use, &h, &unreadable), 0);
        CHECK_STR(tty_use_to_string(use), "locked");
        CHECK_INT(unreadable, 1);
        char *msg = tty_locked_describe(slave, unreadable);
        CHECK(msg && strstr(msg, "exclusive lock") &&
              strstr(msg, "stop_units = klipper.service in /etc/flashd/flashd.conf") &&
              strstr(msg, "may not look"));
        free(msg);

        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        CHECK_INT(tty_probe_locked(slave), 0);
        CHECK_INT(tty_check_use(root, slave, 0, &use, &h, &unreadable), 0);
        CHECK_STR(tty_use_to_string(use), "unknown");
        CHECK_INT(unreadable, 1);

        /* TIOCEXCL: refused opens for users, TIOCGEXCL for root */
        CHECK_INT(ioctl(s, TIOCEXCL), 0);
        CHECK_INT(tty_probe_locked(slave), 1);
        CHECK_INT(ioctl(s, TIOCNXCL), 0);
        CHECK_INT(tty_probe_locked(slave), 0);

        /* every process readable, nobody holds it: free */
        char cmd[700];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'/812", root);
        CHECK_INT(system(cmd), 0);
        CHECK_INT(tty_check_use(root, slave, 0, &use, &h, &unreadable), 0);
        CHECK_STR(tty_use_to_string(use), "free");
        CHECK_INT(unreadable, 0);
        /* the real /proc: we hold the slave and the master, we are the line */
        CHECK_INT(tty_check_use("/proc", slave, 0, &use, &h, NULL), 0);
        CHECK(use != TTY_USE_HELD && use != TTY_USE_LOCKED);
        CHECK_INT(tty_check_use(root, "/nonexistent/ttyACM0", 0, &use, &h, NULL), -ENOENT);

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
        CHECK_INT(system(cmd), 0);
        close(s);
        close(m);
        close(ready[0]);
        close(ready[1]);
}

int main(void)
{
        test_port();
        test_node_gone();
        test_request_uart();
        test_request_usb();
        test_holder();
        test_lock_probe();
        TESTS_EXIT();
}
