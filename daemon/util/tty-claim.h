/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>

/*
 * Serial ports that a thread of flashd is talking to outside a job (Klipper's
 * identify, daemon/update): a job that is about to reboot the board waits
 * until the port is released, since a 1200-baud request made while another
 * descriptor keeps the port open is lost. Thread-safe; a handful of entries.
 */
int tty_claim(const char *tty);
void tty_release(const char *tty);
bool tty_claimed(const char *tty);
