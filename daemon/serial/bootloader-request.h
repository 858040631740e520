/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Asking a board that runs Klipper to reboot into its bootloader, and
 * finding out who else holds its tty.
 *
 * These calls do blocking I/O with short bounded waits: run them on a job's
 * worker thread, not in the main loop.
 */

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
 * A message for a person: "/dev/ttyACM0 is in use by klippy (pid 1234,
 * klipper.service): stop klipper.service or pass --stop-unit". malloc'd.
 */
char *tty_holder_describe(const TtyHolder *h, const char *tty_path);
