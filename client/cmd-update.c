/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What every MCU of the printer runs against the host's Klipper version
 * (update.status), for `flashctl status` (cmd-server.c).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flashctl.h"
#include "util/macros.h"
#include "output.h"

int flashctl_update_status_fetch(Flashctl *ctx, json_t **ret)
{
        RpcClientError e = {};
        int r = flashctl_call(ctx, "update.status", NULL, ret, &e);

        /* an older daemon without update.status: the server part alone */
        if (r == FLASHCTL_EXIT_DAEMON_ERROR && e.code == -32601) {
                rpc_client_error_done(&e);
                return 1;
        }
        if (r == FLASHCTL_EXIT_DAEMON_ERROR)
                flashctl_print_daemon_error(&e);
        rpc_client_error_done(&e);
        return r;
}

static int column_width(const json_t *mcus, const char *key, const char *title, const char *none)
{
        const json_t *m;
        size_t i;
        int w = (int)strlen(title);

        json_array_foreach (mcus, i, m) {
                const char *v = output_json_str(m, key) ?: none;
                w = MAX(w, (int)strlen(v));
        }
        return w;
}

void flashctl_update_status_print(Flashctl *ctx, const json_t *result)
{
        const json_t *mcus, *m;
        size_t i;

        mcus = json_object_get(result, "mcus");
        if (output_json_str(result, "printer_config_error"))
                printf("%s\n", output_json_str(result, "printer_config_error"));
        else if (json_array_size(mcus) == 0)
                printf("printer.cfg names no MCU\n");
        else {
                /* one line per MCU, the columns as wide as their longest value */
                int wn = column_width(mcus, "name", "MCU", "?"),
                    wb = column_width(mcus, "board", "BOARD", "-"),
                    wp = column_width(mcus, "port", "PORT", "-"),
                    wt = column_width(mcus, "transport", "VIA", "-"),
                    wr = column_width(mcus, "running_version", "RUNNING", "?"),
                    wh = column_width(mcus, "host_version", "HOST", "?");
                printf("%-*s %-*s %-*s %-*s %-*s %-*s %-8s %s\n", wn, "MCU", wb, "BOARD", wp, "PORT", wt,
                       "VIA", wr, "RUNNING", wh, "HOST", "STATE", "PROFILE");
                json_array_foreach (mcus, i, m) {
                        const char *state = output_json_str(m, "state");
                        OutputColor color = streq(state ?: "", "current") ? OUTPUT_COLOR_GREEN
                                            : streq(state ?: "", "stale") ? OUTPUT_COLOR_YELLOW
                                                                          : OUTPUT_COLOR_RED;
                        printf("%-*s %-*s %-*s %-*s %-*s %-*s %s%-8s%s %s\n", wn,
                               output_json_str(m, "name") ?: "?", wb, output_json_str(m, "board") ?: "-", wp,
                               output_json_str(m, "port") ?: "-", wt, output_json_str(m, "transport") ?: "-",
                               wr, output_json_str(m, "running_version") ?: "?", wh,
                               output_json_str(m, "host_version") ?: "?",
                               output_color_on(color, ctx->use_color), strna(state),
                               output_color_off(ctx->use_color), output_json_str(m, "profile") ?: "-");
                        /* the why of a state that is not plain */
                        if (output_json_str(m, "reason"))
                                printf("%*s %s\n", wn, "", output_json_str(m, "reason"));
                }
        }
        printf("\nHost Klipper: %s", output_json_str(result, "host_version") ?: "unknown");
        if (output_json_str(result, "host_error"))
                printf(" (%s)", output_json_str(result, "host_error"));
        else if (output_json_str(result, "klipper_path"))
                printf(" (%s)", output_json_str(result, "klipper_path"));
        printf("\n");
}

/* a build or a flash failed, or a board does not run the host version after it */
#define UPDATE_EXIT_FAILED 6

static void print_plan(const json_t *plan)
{
        const json_t *steps = json_object_get(plan, "steps"), *s, *u;
        size_t i, n = 0;

        printf("Host Klipper: %s\n", output_json_str(plan, "host_version") ?: "unknown");
        json_array_foreach (steps, i, s)
                if (streq(output_json_str(s, "action") ?: "", "update")) {
                        printf("  %zu. %-10s %-8s %-5s %-14s profile %-12s %s -> %s\n", ++n,
                               strna(output_json_str(s, "name")), strna(output_json_str(s, "port")),
                               strna(output_json_str(s, "transport")), output_json_str(s, "board") ?: "-",
                               strna(output_json_str(s, "profile")),
                               output_json_str(s, "running_version") ?: "?",
                               strna(output_json_str(plan, "host_version")));
                        /* why it comes last, and where it is flashed */
                        if (output_json_str(s, "bridge_port"))
                                printf("     the USB-to-CAN bridge board: flashed on its USB port %s, after "
                                       "the nodes behind it\n",
                                       output_json_str(s, "bridge_port"));
                }
        json_array_foreach (steps, i, s)
                if (!streq(output_json_str(s, "action") ?: "", "update"))
                        printf("  skip %-10s %s\n", strna(output_json_str(s, "name")),
                               strna(output_json_str(s, "reason")));
        if (n == 0)
                printf("Nothing to update.\n");
        else {
                printf("Every image is built before any board is touched.");
                if (json_array_size(json_object_get(plan, "stop_units")) > 0) {
                        printf(" Stopped while flashing:");
                        json_array_foreach (json_object_get(plan, "stop_units"), i, u)
                                printf(" %s", json_string_value(u));
                }
                printf("\n");
        }
}

static int verb_update(Flashctl *ctx, int argc, char **argv)
{
        static const struct option options[] = {
                { "all", no_argument, NULL, 'a' },
                { "dry-run", no_argument, NULL, 'n' },
                {},
        };
        json_auto_t *params = NULL, *result = NULL, *names = json_array(), *plan_params = NULL;
        bool all = false, dry_run = false;
        const json_t *s;
        size_t i;
        int c, r;

        while ((c = getopt_long(argc, argv, "an", options, NULL)) >= 0)
                switch (c) {
                case 'a':
                        all = true;
                        break;
                case 'n':
                        dry_run = true;
                        break;
                default:
                        return flashctl_usage_error("update", "see flashctl update --help");
                }
        for (int k = optind; k < argc; k++)
                json_array_append_new(names, json_string(argv[k]));
        if (all == (json_array_size(names) > 0))
                return flashctl_usage_error("update",
                                            "give --all or the names of MCUs (flashctl status lists them)");
        params = json_pack("{s:b,s:b}", "all", all, "dry_run", dry_run);
        if (!params)
                return flashctl_report_error(ctx, -ENOMEM, "update");
        if (!all)
                json_object_set(params, "mcus", names);

        /* the plan first, always */
        plan_params = json_pack("{s:b,s:O}", "all", all, "mcus", names);
        if (!plan_params)
                return flashctl_report_error(ctx, -ENOMEM, "update");
        r = flashctl_call(ctx, "update.plan", plan_params, &result, NULL);
        if (r != 0)
                return r;
        if (all)
                json_object_del(params, "mcus");
        if (dry_run) {
                if (ctx->json)
                        return flashctl_print_json_exit(ctx, result);
                print_plan(result);
                return FLASHCTL_EXIT_OK;
        }
        if (!ctx->json)
                print_plan(result);
        /* a named MCU that cannot be updated is a failure, even if the others succeed */
        bool named_skipped = false;
        json_array_foreach (json_object_get(result, "steps"), i, s)
                if (!all && !streq(output_json_str(s, "action") ?: "", "update"))
                        named_skipped = true;
        json_decref(result);
        result = NULL;
        /* builds and flashes take minutes: wait for the report as long as it takes */
        r = flashctl_call_full(ctx, "update.run", params, -1, 4ULL * 3600ULL * 1000000ULL, &result, NULL);
        if (r != 0)
                return r;
        if (ctx->json) {
                flashctl_print_json(ctx, result);
                flashctl_json_result_printed();
                return json_is_true(json_object_get(result, "ok")) && !named_skipped ? FLASHCTL_EXIT_OK
                                                                                     : UPDATE_EXIT_FAILED;
        }
        json_array_foreach (json_object_get(result, "steps"), i, s) {
                printf("%-10s %-13s %s", strna(output_json_str(s, "name")),
                       strna(output_json_str(s, "result")), output_json_str(s, "new_version") ?: "");
                if (json_integer_value(json_object_get(s, "job")) > 0)
                        printf(" (job %lld)", (long long)json_integer_value(json_object_get(s, "job")));
                printf("\n");
                if (output_json_str(s, "message"))
                        printf("%10s %s\n", "", output_json_str(s, "message"));
        }
        if (output_json_str(result, "units_message"))
                printf("%s\n", output_json_str(result, "units_message"));
        if (json_is_true(json_object_get(result, "ok")) && !named_skipped) {
                printf("Every board runs Klipper %s.\n", strna(output_json_str(result, "host_version")));
                return FLASHCTL_EXIT_OK;
        }
        printf("Not every board runs Klipper %s: see above; flashctl status shows where each stands.\n",
               strna(output_json_str(result, "host_version")));
        return UPDATE_EXIT_FAILED;
}

/* "update mcu build-failed: make ... failed" */
static char *format_update_event(const char *method, json_t *params, bool use_color)
{
        const json_t *e = json_array_get(params, 0);
        char *s = NULL;

        if (asprintf(&s, "update %-7s %-10s %s%s%s", strna(output_json_str(e, "phase")),
                     output_json_str(e, "mcu") ?: "-", strna(output_json_str(e, "event")),
                     output_json_str(e, "text") ? ": " : "", output_json_str(e, "text") ?: "") < 0)
                return NULL;
        return s;
}

static const EventPrinter update_events[] = {
        { "notify_update_progress", format_update_event },
        {},
};

static const Verb update_verbs[] = {
        {
                .name = "update",
                .args = "--all|MCU...",
                .summary = "Rebuild and flash the printer's MCUs to the host's Klipper version",
                .help = "  -a --all               Every stale MCU (flashctl status)\n"
                        "  -n --dry-run           Show the plan only\n"
                        "\n"
                        "Prints the plan (which MCUs, with which profile, in which order), builds every\n"
                        "image with Klipper's make in the Klipper tree as its owner (a build failure\n"
                        "touches no board), stops the stop_units once, flashes the boards one after\n"
                        "another (CAN nodes before USB boards), starts the units again and reports what\n"
                        "each board runs now. Exit 0 only when every board it touched runs the host\n"
                        "version; 6 when a build or a flash failed. flashctl watch shows the build\n"
                        "output and each step.\n",
                .run = verb_update,
        },
        {},
};

const CommandGroup command_group_update = {
        .name = "update",
        .verbs = update_verbs,
        .events = update_events,
};
