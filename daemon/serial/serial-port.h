/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A tty opened raw for a bootloader session, or any stream fd wrapped the
 * same way (tests use a socketpair or a pty). Implements SerialTransport.
 *
 * Termios goes through glibc's tcgetattr()/tcsetattr() (and the TCSETS2
 * ioctl for non-standard rates such as 250000) and never depends on
 * isatty(): under umockdev the emulated /dev/ttyACM0 is a pty that isatty()
 * does not recognise (notes/emulation.md).
 */

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/macros.h"
#include "serial/serial-transport.h"

typedef struct SerialPort SerialPort;

/*
 * Open `path` O_RDWR|O_NOCTTY|O_CLOEXEC|O_NONBLOCK. With baud > 0 the line
 * is made raw (8N1, no flow control, no echo) at that rate; with baud == 0
 * termios is left as it is (the 1200-baud reboot request changes only the
 * rate). Returns -ENOENT, -EACCES, -EBUSY, -ENOTTY (not a terminal),
 * -EINVAL (rate not settable) ...
 */
int serial_port_open(SerialPort **ret, const char *path, unsigned baud);

/*
 * serial_port_open(), tried again every 20 ms for up to timeout_usec while
 * the tty is not there yet (-ENOENT, -ENXIO, -ENODEV, -EIO): a bootloader
 * tty that has just been announced. Returns the last error after the
 * timeout, -ECANCELED when *cancel is set.
 */
int serial_port_open_wait(SerialPort **ret, const char *path, unsigned baud, uint64_t timeout_usec,
                          const atomic_bool *cancel);

/*
 * Take the exclusive advisory lock on the port, as pyserial's
 * Serial(exclusive=True) does (flock LOCK_EX|LOCK_NB): klippy and Katapult's
 * flashtool.py open their ports so. -EBUSY when another open file holds it.
 * Released when the port is freed.
 */
int serial_port_lock(SerialPort *p);

/* Wrap an already open stream fd (takes ownership; no termios changes). */
int serial_port_new_from_fd(SerialPort **ret, int fd);

SerialPort *serial_port_free(SerialPort *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(SerialPort *, serial_port_free);

SerialTransport *serial_port_get_transport(SerialPort *p);
int serial_port_get_fd(SerialPort *p);

/* Set the line rate (any rate; non-standard ones via termios2/BOTHER). */
int serial_port_set_baud(SerialPort *p, unsigned baud);
/* Current output rate, or a negative errno. */
int serial_port_get_baud(SerialPort *p, unsigned *ret);

/*
 * Raise (on = true, TIOCMBIS) or drop (TIOCMBIC) the given TIOCM_* modem
 * lines, e.g. TIOCM_DTR | TIOCM_RTS. Returns -ENOTTY/-EINVAL on lines that
 * have no modem control (a pty).
 */
int serial_port_set_modem_lines(SerialPort *p, int lines, bool on);

/* Wait up to timeout_usec until queued output has left (tcdrain with a timeout). */
int serial_port_drain(SerialPort *p, uint64_t timeout_usec);

/* Map a standard rate (1200, 115200, ...) to its Bxxx constant; 0 if none. */
unsigned serial_baud_to_speed(unsigned baud);
