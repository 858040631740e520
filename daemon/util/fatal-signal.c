/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/fatal-signal.h"

static bool journal;

/* Only async-signal-safe work below: no stdio, no malloc. */
static size_t put(char *buf, size_t pos, size_t size, const char *s)
{
        while (*s && pos + 1 < size)
                buf[pos++] = *s++;
        buf[pos] = '\0';
        return pos;
}

static size_t put_number(char *buf, size_t pos, size_t size, uintmax_t v, unsigned base)
{
        char digits[32];
        size_t n = 0;

        do {
                digits[n++] = "0123456789abcdef"[v % base];
                v /= base;
        } while (v && n < sizeof(digits));
        if (base == 16)
                pos = put(buf, pos, size, "0x");
        while (n > 0 && pos + 1 < size)
                buf[pos++] = digits[--n];
        buf[pos] = '\0';
        return pos;
}

static void on_fatal_signal(int sig, siginfo_t *si, void *context)
{
        char buf[512];
        size_t n = 0;
        int saved = errno;
        const char *name = sigabbrev_np(sig);

        n = put(buf, n, sizeof(buf), journal ? "<2>" : "flashd[crit]: ");
        n = put(buf, n, sizeof(buf), "fatal signal SIG");
        n = put(buf, n, sizeof(buf), name ? name : "?");
        if (si && si->si_code <= 0) {
                /* sent: kill(), raise(), abort(), or systemd */
                n = put(buf, n, sizeof(buf), " sent by pid ");
                n = put_number(buf, n, sizeof(buf), (uintmax_t)si->si_pid, 10);
                if (si->si_pid == getpid())
                        n = put(buf, n, sizeof(buf), " (flashd itself: abort() on an internal error)");
                else if (si->si_pid == 1 && sig == SIGABRT)
                        n = put(buf, n, sizeof(buf),
                                " (systemd: the watchdog was not pinged, the main loop was stuck)");
        } else if (si && (sig == SIGSEGV || sig == SIGBUS || sig == SIGILL || sig == SIGFPE)) {
                n = put(buf, n, sizeof(buf), " at address ");
                n = put_number(buf, n, sizeof(buf), (uintmax_t)(uintptr_t)si->si_addr, 16);
                n = put(buf, n, sizeof(buf), " (a crash)");
        }
        n = put(buf, n, sizeof(buf),
                "; flashd stops now; under systemd it is restarted (Restart=on-failure) and a job "
                "interrupted during its flash is retried when the board shows up in its bootloader\n");
        (void)!write(STDERR_FILENO, buf, n);
        errno = saved;
        /* SA_RESETHAND put the default action back: die of the signal itself
         * (core dump, and the exit status systemd judges). */
        raise(sig);
}

static void on_process_exit(int status, void *userdata)
{
        char buf[256];
        size_t n = 0;

        if (status == 0)
                return;
        n = put(buf, n, sizeof(buf), journal ? "<3>" : "flashd[error]: ");
        n = put(buf, n, sizeof(buf), "exiting with status ");
        n = put_number(buf, n, sizeof(buf), (uintmax_t)(unsigned)status, 10);
        n = put(buf, n, sizeof(buf),
                " (the reason is logged above; with none, a library flashd uses called exit())\n");
        (void)!write(STDERR_FILENO, buf, n);
}

void fatal_signal_log_install(void)
{
        static const int signals[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP };

        journal = getenv("JOURNAL_STREAM") != NULL;
        (void)on_exit(on_process_exit, NULL);
        for (size_t i = 0; i < sizeof(signals) / sizeof(signals[0]); i++) {
                struct sigaction old, sa = {
                        .sa_sigaction = on_fatal_signal,
                        .sa_flags = SA_SIGINFO | SA_RESETHAND | SA_NODEFER,
                };

                if (sigaction(signals[i], NULL, &old) < 0)
                        continue;
                if ((old.sa_flags & SA_SIGINFO) || old.sa_handler != SIG_DFL)
                        continue;
                sigemptyset(&sa.sa_mask);
                (void)sigaction(signals[i], &sa, NULL);
        }
}
