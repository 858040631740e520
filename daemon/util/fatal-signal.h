/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A daemon that dies must say why. For the signals that kill flashd
 * without its doing (a crash, abort(), systemd's watchdog sending
 * SIGABRT) a handler writes one line to stderr (the journal under
 * systemd) naming the signal and its sender or fault address, then lets
 * the signal take its default course (core dump, exit status) so that
 * systemd sees the failure and restarts the service. A handler already in
 * place (a sanitizer's, which prints more) is kept. An exit with a
 * status other than 0 is logged too, whoever called exit().
 */

void fatal_signal_log_install(void);
