/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Asking a board that runs Klipper to reboot into its bootloader, and
 * finding out who else holds its tty.
 *
 * These calls do blocking I/O with short bounded waits: run them on a job's
 * worker thread, not in the main loop.
 */

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * The USB CDC "1200 baud" request, as Klipper's scripts/flash_usb.py
 * (enter_bootloader) does it: open the tty, raise DTR, set 1200 baud, drop
 * DTR, close. The firmware sees line coding 1200 with DTR low and reboots
 * into its bootloader (Katapult, else the ROM DFU loader). A tty without
 * modem lines (a pty, an emulated tty) is not an error: the rate change is
 * what counts. Returns 0 or a negative errno from open()/tcsetattr().
 */
int bootloader_request_usb(const char *tty_path);

/* Klipper src/generic/serial_irq.c matches exactly these 32 bytes as one
 * message block ... */
#define BOOTLOADER_REQUEST_BLOCK      " \x1c Request Serial Bootloader!! ~"
#define BOOTLOADER_REQUEST_BLOCK_SIZE 32u
/* ... and senders (Katapult's flashtool.py, Klipper's docs) put a sync
 * byte `~` in front so the block starts a fresh message. */
#define BOOTLOADER_REQUEST_SYNC      '~'
#define BOOTLOADER_UART_DEFAULT_BAUD 250000u

/*
 * The plain UART request: open the tty raw at `baud` (0 = 250000, Klipper's
 * default), send `~` plus the 32-byte request block, wait (bounded) until it
 * has left, close. Returns 0 or a negative errno.
 */
int bootloader_request_uart(const char *tty_path, unsigned baud);

typedef struct TtyHolder {
        pid_t pid;
        char comm[16];     /* /proc/PID/comm: "python3", "klippy", ... */
        char name[64];     /* a better name: the script for interpreters ("klippy") */
        char unit[128];    /* systemd unit from /proc/PID/cgroup, or "" */
        char cmdline[256]; /* argv joined with spaces, truncated */
} TtyHolder;

/*
 * Scan `proc_root`/<pid>/fd/ * (proc_root = "/proc" normally; tests pass a
 * fake tree) for a descriptor that refers to the same device as `tty_path`
 * (same st_rdev for character devices, else same st_dev and st_ino).
 * Processes with pid `exclude_pid` (e.g. getpid(); 0 for none) are skipped.
 * Returns 1 and the first holder found, 0 when nobody holds it, -ENOENT
 * when tty_path does not exist, other negative errno on failure.
 * Unreadable /proc entries (other users' processes) are skipped.
 */
int tty_find_holder(const char *proc_root, const char *tty_path, pid_t exclude_pid, TtyHolder *ret);

/*
 * The same scan, also counting the processes whose fd/ could not be read
 * (EACCES: other users' processes when flashd runs as its own user under
 * the hardened unit). With *ret_unreadable > 0 a result of 0 means "nobody
 * that flashd could see", not "free".
 */
int tty_find_holder_full(const char *proc_root, const char *tty_path, pid_t exclude_pid, TtyHolder *ret,
                         unsigned *ret_unreadable);

/*
 * The permission-free probe: open the tty (O_NONBLOCK, no termios changes)
 * and ask whether another open file holds it exclusively:
 * - flock(LOCK_EX|LOCK_NB) fails with EWOULDBLOCK: pyserial's
 *   Serial(exclusive=True) takes exactly this lock, and Klipper's
 *   klippy/serialhdl.py and Katapult's flashtool.py open their ports so;
 * - TIOCEXCL: open() fails with EBUSY (non-root), or TIOCGEXCL says so.
 * Our own lock is released at once (the fd is closed before returning).
 * Returns 1 locked, 0 not locked, negative errno when it cannot be opened
 * (-ENOENT, -EACCES, ...). A holder that opened the port without a lock
 * (screen, minicom -o) is not seen this way; only the /proc scan sees it.
 */
int tty_probe_locked(const char *tty_path);

/* How a tty is in use, as far as flashd can tell. */
typedef enum TtyUse {
        TTY_USE_FREE,    /* every process checked: nobody has it open, no lock on it */
        TTY_USE_HELD,    /* a process has it open: the TtyHolder says who */
        TTY_USE_LOCKED,  /* exclusively locked by a process flashd may not look at */
        TTY_USE_UNKNOWN, /* not locked, but some processes could not be checked */
        _TTY_USE_MAX,
        _TTY_USE_INVALID = -EINVAL,
} TtyUse;

const char *tty_use_to_string(TtyUse u);

/*
 * Both probes: the /proc scan (names the holder when it may look), then the
 * lock probe (works without permissions). *ret_use is always set on
 * success; *ret_holder only for TTY_USE_HELD; *ret_unreadable (optional)
 * counts the processes the scan could not check. Returns 0 or a negative
 * errno (-ENOENT: no such tty).
 */
int tty_check_use(const char *proc_root, const char *tty_path, pid_t exclude_pid, TtyUse *ret_use,
                  TtyHolder *ret_holder, unsigned *ret_unreadable);

/*
 * A message for a person about a tty that is locked by a process flashd
 * cannot name: "/dev/ttyACM0 is in use: a process that flashd may not look
 * at holds an exclusive lock on it (as Klipper's klippy does); stop it
 * (systemctl stop klipper), or let flashd stop it during a flash: stop_units =
 * klipper.service in /etc/flashd/flashd.conf". malloc'd.
 */
char *tty_locked_describe(const char *tty_path, unsigned unreadable);

/*
 * A message for a person: "/dev/ttyACM0 is in use by klippy (pid 1234,
 * klipper.service): stop klipper.service, or let flashd stop it during a
 * flash: stop_units = klipper.service in /etc/flashd/flashd.conf". malloc'd.
 */
char *tty_holder_describe(const TtyHolder *h, const char *tty_path);
