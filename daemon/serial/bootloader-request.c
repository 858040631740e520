/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <termios.h>
#include <time.h>

#include "util/macros.h"
#include "serial/bootloader-request.h"
#include "serial/serial-port.h"

/* Time for the request to leave the UART before we close (250000 baud
 * moves 33 bytes in ~1.3 ms; slow rates and USB-serial adapters need more). */
#define UART_DRAIN_TIMEOUT_USEC (500u * 1000u)
#define UART_WRITE_TIMEOUT_USEC (1000u * 1000u)

static bool modem_error_ignorable(int r)
{
        /* No modem lines (pty, emulated tty, some USB-serial chips). */
        return r == -ENOTTY || r == -EINVAL || r == -ENOTSUP || r == -EOPNOTSUPP;
}

int bootloader_request_usb(const char *tty_path)
{
        _cleanup_(serial_port_freep) SerialPort *p = NULL;
        int r;

        /* flash_usb.py enter_bootloader(): DTR up, 1200 baud, DTR down,
         * close. termios is otherwise left as it is. */
        r = serial_port_open(&p, tty_path, 0);
        if (r < 0)
                return r;

        r = serial_port_set_modem_lines(p, TIOCM_DTR, true);
        if (r < 0 && !modem_error_ignorable(r))
                return r;

        r = serial_port_set_baud(p, 1200);
        if (r < 0)
                /* The board is gone already or the tty is not a tty:
                 * either way the request did not happen. */
                return r;

        r = serial_port_set_modem_lines(p, TIOCM_DTR, false);
        if (r < 0 && !modem_error_ignorable(r) && r != -EIO && r != -ENODEV)
                /* EIO here usually means the board is already rebooting. */
                return r;

        return 0;
}

int bootloader_request_uart(const char *tty_path, unsigned baud)
{
        _cleanup_(serial_port_freep) SerialPort *p = NULL;
        uint8_t req[1 + BOOTLOADER_REQUEST_BLOCK_SIZE];
        int r;

        if (baud == 0)
                baud = BOOTLOADER_UART_DEFAULT_BAUD;

        r = serial_port_open(&p, tty_path, baud);
        if (r < 0)
                return r;

        req[0] = BOOTLOADER_REQUEST_SYNC;
        memcpy(req + 1, BOOTLOADER_REQUEST_BLOCK, BOOTLOADER_REQUEST_BLOCK_SIZE);
        r = serial_transport_write(serial_port_get_transport(p), req, sizeof(req), UART_WRITE_TIMEOUT_USEC);
        if (r < 0)
                return r;

        r = serial_port_drain(p, UART_DRAIN_TIMEOUT_USEC);
        if (r < 0 && r != -ETIMEDOUT)
                return r;
        return 0;
}

/* Read a small file under dir into buf (NUL terminated); length or -errno. */
static ssize_t read_small(int dir_fd, const char *name, char *buf, size_t size)
{
        _cleanup_close_ int fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        ssize_t n = read(fd, buf, size - 1);
        if (n < 0)
                return -errno;
        buf[n] = 0;
        return n;
}

static bool same_file(const struct stat *a, const struct stat *b)
{
        if (S_ISCHR(a->st_mode) && S_ISCHR(b->st_mode))
                return a->st_rdev == b->st_rdev;
        return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/* A path or module name as people write them: letters, digits and ._+-/ */
static bool plain_name(const char *s)
{
        if (!s[0])
                return false;
        for (; *s; s++)
                if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
                      strchr("._+-/", *s)))
                        return false;
        return true;
}

static void holder_fill(int pid_fd, pid_t pid, TtyHolder *h)
{
        char buf[4096];
        ssize_t n;

        *h = (TtyHolder){ .pid = pid };

        if (read_small(pid_fd, "comm", h->comm, sizeof(h->comm)) > 0)
                h->comm[strcspn(h->comm, "\n")] = 0;
        snprintf(h->name, sizeof(h->name), "%s", h->comm);

        n = read_small(pid_fd, "cmdline", buf, sizeof(buf));
        if (n > 0) {
                /* argv is NUL separated; find the script an interpreter runs
                 * (klippy.py under python3 -> "klippy"). */
                const char *argv0 = buf;
                const char *base0 = strrchr(argv0, '/');
                base0 = base0 ? base0 + 1 : argv0;
                bool interpreter = strncmp(base0, "python", 6) == 0 || strncmp(h->comm, "python", 6) == 0;
                size_t pos = strlen(buf) + 1;
                while (interpreter && pos < (size_t)n) {
                        const char *arg = buf + pos;
                        pos += strlen(arg) + 1;
                        bool short_opts = arg[0] == '-' && arg[1] != '-' && arg[1] != 0;
                        char last = short_opts ? arg[strlen(arg) - 1] : 0;
                        /* -c CODE (or -uc): the next argument is code, not a
                         * script; the program is the interpreter itself */
                        if (last == 'c')
                                break;
                        /* -m MODULE: the module is the program */
                        if (last == 'm') {
                                if (pos < (size_t)n && plain_name(buf + pos))
                                        snprintf(h->name, sizeof(h->name), "%s", buf + pos);
                                break;
                        }
                        /* options with a separate value */
                        if (last == 'W' || last == 'X') {
                                if (pos < (size_t)n)
                                        pos += strlen(buf + pos) + 1;
                                continue;
                        }
                        if (arg[0] == '-' || arg[0] == 0)
                                continue;
                        /* a script is a file name; anything else (code read
                         * from somewhere, a quoted string) names nothing */
                        if (!plain_name(arg))
                                break;
                        const char *b = strrchr(arg, '/');
                        b = b ? b + 1 : arg;
                        size_t len = strlen(b);
                        if (len > 3 && streq(b + len - 3, ".py"))
                                len -= 3;
                        if (len > 0)
                                snprintf(h->name, sizeof(h->name), "%.*s", (int)len, b);
                        break;
                }

                for (ssize_t i = 0; i < n - 1; i++)
                        if (buf[i] == 0)
                                buf[i] = ' ';
                snprintf(h->cmdline, sizeof(h->cmdline), "%s", buf);
        }

        n = read_small(pid_fd, "cgroup", buf, sizeof(buf));
        if (n > 0) {
                /* "0::/system.slice/klipper.service": the innermost .service. */
                char *line = strstr(buf, "0::");
                if (line) {
                        line += 3;
                        line[strcspn(line, "\n")] = 0;
                        char *best = NULL;
                        for (char *tok = strtok(line, "/"); tok; tok = strtok(NULL, "/")) {
                                size_t len = strlen(tok);
                                if (len > 8 && streq(tok + len - 8, ".service"))
                                        best = tok;
                        }
                        if (best)
                                snprintf(h->unit, sizeof(h->unit), "%s", best);
                }
        }
}

/* The pts index of a pty slave (Unix98 ptys: majors 136..143), or -1. */
static int pts_index(const struct stat *st)
{
        if (!S_ISCHR(st->st_mode) || major(st->st_rdev) < 136 || major(st->st_rdev) > 143)
                return -1;
        return (int)((major(st->st_rdev) - 136) * 256 + minor(st->st_rdev));
}

/* Whether fd `name` of a process, whose open file is `st`, is the master
 * of pty `index`: it is the ptmx device (5:2, /dev/ptmx or /dev/pts/ptmx)
 * and its fdinfo says "tty-index: <index>". The stat the scan needs anyway
 * decides, so other descriptors cost no readlink. */
static bool is_pty_master(int pid_fd, const struct stat *st, const char *name, int index)
{
        char path[300], info[512];

        if (!S_ISCHR(st->st_mode) || major(st->st_rdev) != 5 || minor(st->st_rdev) != 2)
                return false;
        snprintf(path, sizeof(path), "fdinfo/%s", name);
        if (read_small(pid_fd, path, info, sizeof(info)) <= 0)
                return false;
        const char *t = strstr(info, "tty-index:");
        return t && atoi(t + strlen("tty-index:")) == index;
}

int tty_find_holder_full(const char *proc_root, const char *tty_path, pid_t exclude_pid, TtyHolder *ret,
                         unsigned *ret_unreadable)
{
        unsigned unreadable = 0;
        struct stat tty_st[2];
        size_t n_st = 1;
        int pty = -1;
        DIR *proc;

        if (stat(tty_path, &tty_st[0]) < 0)
                return -errno;
        /* What an open descriptor of it refers to: the same on a real
         * system, but under an LD_PRELOAD device emulator stat() reports the
         * emulated node while descriptors (and /proc/PID/fd) point at the
         * backing pty. O_PATH opens nothing (no DTR, no side effects). */
        int path_fd = open(tty_path, O_PATH | O_CLOEXEC | O_NOCTTY);
        if (path_fd >= 0 && fstat(path_fd, &tty_st[1]) >= 0 && !same_file(&tty_st[0], &tty_st[1]))
                n_st = 2;
        /* closed before the scan, or we would find ourselves */
        safe_close(path_fd);
        for (size_t i = 0; i < n_st && pty < 0; i++)
                pty = pts_index(&tty_st[i]);

        proc = opendir(proc_root);
        if (!proc)
                return -errno;

        struct dirent *de;
        int found = 0;
        while (!found && (de = readdir(proc))) {
                char *end;
                long pid = strtol(de->d_name, &end, 10);
                if (*end != 0 || pid <= 0 || end == de->d_name)
                        continue;
                if (exclude_pid > 0 && pid == exclude_pid)
                        continue;

                _cleanup_close_ int pid_fd =
                        openat(dirfd(proc), de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (pid_fd < 0)
                        continue; /* exited meanwhile */
                int fd_dir_fd = openat(pid_fd, "fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (fd_dir_fd < 0) {
                        /* ENOENT: exited meanwhile. Anything else (EACCES:
                         * another user's process while we run as flashd)
                         * means we could not look: the caller must not
                         * call the port free on our word alone. */
                        if (errno != ENOENT)
                                unreadable++;
                        continue;
                }
                DIR *fds = fdopendir(fd_dir_fd);
                if (!fds) {
                        safe_close(fd_dir_fd);
                        continue;
                }
                bool match = false, master = false;
                struct dirent *fe;
                while ((fe = readdir(fds))) {
                        struct stat st;
                        if (fe->d_name[0] == '.')
                                continue;
                        /* Follows the magic link to the open file. */
                        if (fstatat(dirfd(fds), fe->d_name, &st, 0) < 0)
                                continue;
                        /* A process that holds the pty's master is the other
                         * end of the line (a terminal, ser2net, the board
                         * emulator), not a competing user of it. */
                        if (pty >= 0 && is_pty_master(pid_fd, &st, fe->d_name, pty)) {
                                master = true;
                                break;
                        }
                        for (size_t i = 0; i < n_st; i++)
                                match = match || same_file(&st, &tty_st[i]);
                }
                closedir(fds);
                if (match && !master) {
                        holder_fill(pid_fd, (pid_t)pid, ret);
                        found = 1;
                }
        }
        closedir(proc);
        if (ret_unreadable)
                *ret_unreadable = unreadable;
        return found;
}

int tty_find_holder(const char *proc_root, const char *tty_path, pid_t exclude_pid, TtyHolder *ret)
{
        return tty_find_holder_full(proc_root, tty_path, exclude_pid, ret, NULL);
}

int tty_probe_locked(const char *tty_path)
{
        /* O_NONBLOCK: a tty without carrier must not block the open; no
         * termios change, no data: the holder's line settings stay. */
        _cleanup_close_ int fd = open(tty_path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0)
                /* TIOCEXCL refuses further opens with EBUSY (root excepted). */
                return errno == EBUSY ? 1 : -errno;

#ifdef TIOCGEXCL
        /* Linux >= 3.8; root gets past TIOCEXCL on open(), so ask. */
        int excl = 0;
        if (ioctl(fd, TIOCGEXCL, &excl) >= 0 && excl)
                return 1;
#endif
        /* pyserial exclusive=True: fcntl.flock(fd, LOCK_EX | LOCK_NB). Our
         * lock (if we get it) goes with the close below. */
        if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
                if (errno == EWOULDBLOCK)
                        return 1;
                /* ENOLCK and the like: the probe says nothing */
                return 0;
        }
        return 0;
}

static const char *const tty_use_table[_TTY_USE_MAX] = {
        [TTY_USE_FREE] = "free",
        [TTY_USE_HELD] = "held",
        [TTY_USE_LOCKED] = "locked",
        [TTY_USE_UNKNOWN] = "unknown",
};

const char *tty_use_to_string(TtyUse u)
{
        if (u < 0 || u >= _TTY_USE_MAX)
                return NULL;
        return tty_use_table[u];
}

int tty_check_use(const char *proc_root, const char *tty_path, pid_t exclude_pid, TtyUse *ret_use,
                  TtyHolder *ret_holder, unsigned *ret_unreadable)
{
        TtyHolder h;
        unsigned unreadable = 0;
        int r;

        r = tty_find_holder_full(proc_root, tty_path, exclude_pid, &h, &unreadable);
        if (r < 0)
                return r;
        if (r > 0) {
                if (ret_holder)
                        *ret_holder = h;
                *ret_use = TTY_USE_HELD;
        } else {
                /* After the scan: our probe fd must not show up in it. */
                r = tty_probe_locked(tty_path);
                if (r < 0 && r != -EACCES && r != -EPERM)
                        return r;
                if (r > 0)
                        *ret_use = TTY_USE_LOCKED;
                else
                        *ret_use = unreadable > 0 ? TTY_USE_UNKNOWN : TTY_USE_FREE;
        }
        if (ret_unreadable)
                *ret_unreadable = unreadable;
        return 0;
}

char *tty_locked_describe(const char *tty_path, unsigned unreadable)
{
        char *s = NULL;

        if (asprintf(&s,
                     "%s is in use: a process holds an exclusive lock on it (as Klipper's klippy does)%s; "
                     "stop that program (systemctl stop klipper), or let flashd stop it during a flash: "
                     "stop_units = klipper.service in /etc/flashd/flashd.conf",
                     tty_path,
                     unreadable > 0 ? ", and flashd may not look at other users' processes to name it"
                                    : "") < 0)
                return NULL;
        return s;
}

char *tty_holder_describe(const TtyHolder *h, const char *tty_path)
{
        char *s = NULL;
        int r;

        if (h->unit[0])
                /* flashd stops such units itself, around the flash only, when the
                 * configuration names them (daemon/flashd.conf). */
                r = asprintf(&s,
                             "%s is in use by %s (pid %d, %s): stop %s, or let flashd stop it during a "
                             "flash: stop_units = %s in /etc/flashd/flashd.conf",
                             tty_path, h->name[0] ? h->name : "another process", (int)h->pid, h->unit,
                             h->unit, h->unit);
        else
                r = asprintf(&s, "%s is in use by %s (pid %d): stop that program first", tty_path,
                             h->name[0] ? h->name : "another process", (int)h->pid);
        return r < 0 ? NULL : s;
}
