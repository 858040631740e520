/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * tty-based board modes: the Klipper application (klipper-tty.c) and,
 * later, a Katapult bootloader model (katapult-*.c) are one TtyModel each.
 *
 * The board appears as a CDC-ACM USB device (UsbIdentity from
 * usb_device_identity() for the model's BoardMode) with a tty
 * /dev/ttyACM<board index> under its interface 0, and the by-id link
 * /dev/serial/by-id/usb-<manufacturer>_<product>_<serial>-if00. The tty is
 * a pty whose master vboard holds; the tty is created once per board and
 * re-linked on later power-ups (umockdev 0.17.16 aborts on a second add).
 *
 * The interface a model implements (every callback runs with World.lock
 * held, on the main thread or umockdev's worker thread):
 *   attach(b, &state)   the board just powered up in model->mode; the tty
 *                       is there; allocate per-board state.
 *   detach(b, state)    the board leaves the mode (re-enumeration, unplug,
 *                       power-off, end of the world); free the state.
 *   on_data(b, state, bytes, n)
 *                       bytes the program under test wrote to the tty.
 *   on_line(b, state, baud, dtr)
 *                       the line changed: a termios change (seen through
 *                       TIOCPKT/EXTPROC on the master, so glibc's
 *                       tcsetattr counts), a modem-line ioctl (TIOCMBIS,
 *                       TIOCMBIC, TIOCMSET on the emulated tty) or a CDC
 *                       SET_LINE_CODING / SET_CONTROL_LINE_STATE through
 *                       usbfs. DTR is high after power-up (the tty layer
 *                       raises it on open; closing cannot be observed).
 * and what a model may call (lock held):
 *   tty_port_write(b, bytes, n)
 *                       bytes back to the program (readable on the tty).
 *   vboard_schedule(b, delay_us, mode, off_us, why)
 *                       drop off the bus after delay_us and come back in
 *                       `mode` (another USB identity on the same port path,
 *                       new devnum) after off_us; mode -1 = as the firmware
 *                       would boot (app if plausible, else the bootloader).
 *   vboard_event(b, "event", "detail %s", ...)
 *                       add to the board's event log.
 *   b->flash            the board's FlashModel (read/erase/program).
 */

#include "usb-device.h"
#include "vboard.h"

struct TtyModel {
        const char *name;
        BoardMode mode;
        int (*attach)(VBoard *b, void **ret_state);
        void (*detach)(VBoard *b, void *state);
        void (*on_data)(VBoard *b, void *state, const uint8_t *data, size_t len);
        void (*on_line)(VBoard *b, void *state, uint32_t baud, bool dtr);
};

extern const TtyModel klipper_tty_model;
extern const TtyModel katapult_tty_model;
/* The model for a tty mode, or NULL (DFU/off, or not built yet). */
const TtyModel *tty_model_for_mode(BoardMode mode);

int tty_port_write(VBoard *b, const void *data, size_t len);

/* Glue (main thread, lock not held). */
int tty_port_attach(World *w, VBoard *b, UsbDevice *d, const UsbIdentity *id);
void tty_port_detach(World *w, VBoard *b);
TtyPort *tty_port_free(TtyPort *p);
/* Lock held: a line change seen elsewhere (CDC requests over usbfs). */
void tty_port_line_changed(VBoard *b, uint32_t baud, bool dtr);
/* For `list`: node and by-id link while present, else NULL. */
const char *tty_port_devnode(const TtyPort *p);
const char *tty_port_by_id(const TtyPort *p);
