/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Identify a board that runs Klipper's application: read its data
 * dictionary with `identify` (klippy/serialhdl.py does the same when it
 * connects) and return what it says. Sequential blocking code with bounded
 * waits: run it on a worker thread. It never opens or locks the port
 * itself: the caller checks that nobody else (klippy) holds it first.
 *
 * Sequence numbers: the board NAKs a block whose sequence it does not
 * expect with an empty block carrying the one it does (a board klippy has
 * talked to expects anything but 0); the session follows it and resends.
 */

#include <stdatomic.h>
#include <stdint.h>

#include "codec/klipper-proto.h"
#include "serial/serial-transport.h"

#define KLIPPER_IDENTIFY_TIMEOUT_USEC (5U * 1000U * 1000U)

/* 0 with *ret filled; -ETIMEDOUT (no answer: not Klipper, or another baud
 * rate), -EBADMSG (the dictionary does not inflate), -ENODEV, -ECANCELED. */
int klipper_identify_run(SerialTransport *t, uint64_t timeout_usec, const atomic_bool *cancel,
                         KlipperDictInfo *ret);

/* Open `tty` raw at `baud` (0: 250000, klippy's default; USB CDC ignores it), run
 * the above, close. */
int klipper_identify_tty(const char *tty, unsigned baud, uint64_t timeout_usec, const atomic_bool *cancel,
                         KlipperDictInfo *ret);
