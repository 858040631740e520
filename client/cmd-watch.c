/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * flashctl watch: every group's notifications as they happen, one line
 * each (or one JSON object each with --json). The lines come from the
 * groups' EventPrinters (cmd-device.c, cmd-job.c, cmd-rule.c, ...); an
 * event no group knows is shown raw.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "flashctl.h"
#include "util/macros.h"

static const EventPrinter *event_printer_find(const char *method)
{
        for (const CommandGroup *const *g = command_groups; *g; g++)
                for (const EventPrinter *e = (*g)->events; e && e->method; e++)
                        if (streq(e->method, method))
                                return e;
        return NULL;
}

typedef struct WatchState {
        Flashctl *ctx;
} WatchState;

static int watch_on_notify(RpcClient *c, const char *method, json_t *params, void *userdata)
{
        WatchState *w = userdata;
        char ts[32];

        if (!method)
                return 0;
        if (w->ctx->json) {
                /* The notification as sent, plus when we saw it: one object per line. */
                json_auto_t *o = json_pack("{s:s, s:s, s:O}", "time", flashctl_time_now(ts, true), "method",
                                           method, "params", params ? params : json_null());
                if (!o)
                        return -ENOMEM;
                if (json_dumpf(o, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER) < 0)
                        return -EIO;
                fputc('\n', stdout);
        } else {
                const EventPrinter *p = event_printer_find(method);
                _cleanup_free_ char *line = NULL;
                if (p)
                        line = p->format(method, params, w->ctx->use_color);
                else {
                        /* An event this client does not know: show it raw rather than hide it. */
                        _cleanup_free_ char *raw = json_dumps(params, JSON_COMPACT | JSON_ENCODE_ANY);
                        if (asprintf(&line, "%s %s", method, strempty(raw)) < 0)
                                line = NULL;
                }
                if (line)
                        printf("%s %s\n", flashctl_time_now(ts, false), line);
        }
        /* Line by line even into a pipe: a watcher reads events as they come. */
        fflush(stdout);
        (void)c;
        return 0;
}

static int verb_watch(Flashctl *ctx, int argc, char **argv)
{
        static const struct option options[] = { {} };
        sigset_t mask;
        int c, r;

        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                return FLASHCTL_EXIT_USAGE;
        if (optind < argc)
                return flashctl_usage_error(argv[0], "'watch' takes no arguments");

        /* SIGINT/SIGTERM through a signalfd: poll() sees them with the socket,
         * with no race between checking a flag and sleeping. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return flashctl_report_error(ctx, negative_errno(), "watch");
        _cleanup_close_ int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
        if (sfd < 0)
                return flashctl_report_error(ctx, negative_errno(), "watch");

        r = flashctl_connect(ctx);
        if (r != 0)
                return r;

        WatchState w = { .ctx = ctx };
        rpc_client_set_notify(ctx->client, watch_on_notify, &w);
        if (!ctx->json && ctx->legend && isatty(STDERR_FILENO) == 1)
                fprintf(stderr, "watching device events; press Ctrl-C to stop\n");

        r = rpc_client_run(ctx->client, UINT64_MAX, sfd);
        if (r == -EINTR)
                return FLASHCTL_EXIT_OK;
        if (r < 0)
                return flashctl_report_error(ctx, r, "watch");
        return FLASHCTL_EXIT_OK;
}

static const Verb watch_verbs[] = {
        {
                .name = "watch",
                .summary = "Print device events as they happen, until interrupted",
                .help = "One line per event: time, event, port, mode, board, device node.\n"
                        "With --json, one JSON object per line: {\"time\", \"method\", \"params\"}.\n"
                        "Exits 0 on SIGINT (Ctrl-C) or SIGTERM.\n",
                .run = verb_watch,
        },
        {},
};

const CommandGroup command_group_watch = {
        .name = "watch",
        .verbs = watch_verbs,
};
