/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * flashctl status: what every MCU of the printer runs against the host's
 * Klipper version (update.status).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flashctl.h"
#include "macros.h"
#include "output.h"

static int verb_status(Flashctl *ctx, int argc, char **argv)
{
        static const struct option options[] = { { "json", no_argument, NULL, 'j' }, {} };
        json_auto_t *result = NULL;
        const json_t *mcus, *m;
        size_t i;
        int c, r;

        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case 'j':
                        ctx->json = true;
                        break;
                default:
                        return flashctl_usage_error("status", "see flashctl status --help");
                }
        if (argc != optind)
                return flashctl_usage_error("status", "'status' takes no arguments");
        r = flashctl_call(ctx, "update.status", NULL, &result, NULL);
        if (r != 0)
                return r;
        if (ctx->json)
                return flashctl_print_json_exit(ctx, result);

        printf("Host Klipper: %s", output_json_str(result, "host_version") ?: "unknown");
        if (output_json_str(result, "host_error"))
                printf(" (%s)", output_json_str(result, "host_error"));
        printf("\n");
        if (output_json_str(result, "printer_config_error")) {
                printf("%s\n", output_json_str(result, "printer_config_error"));
                return FLASHCTL_EXIT_DAEMON_ERROR;
        }
        mcus = json_object_get(result, "mcus");
        printf("%-10s %-14s %-5s %-24s %-24s %-8s %s\n", "MCU", "BOARD", "VIA", "RUNNING", "HOST", "STATE",
               "PROFILE");
        json_array_foreach (mcus, i, m) {
                const char *state = output_json_str(m, "state");
                OutputColor color = streq(state ?: "", "current") ? OUTPUT_COLOR_GREEN
                                    : streq(state ?: "", "stale") ? OUTPUT_COLOR_YELLOW
                                                                  : OUTPUT_COLOR_RED;
                printf("%-10s %-14s %-5s %-24s %-24s %s%-8s%s %s\n", strna(output_json_str(m, "name")),
                       output_json_str(m, "board") ?: "-", output_json_str(m, "transport") ?: "-",
                       output_json_str(m, "running_version") ?: "?",
                       output_json_str(m, "host_version") ?: "?", output_color_on(color, ctx->use_color),
                       strna(state), output_color_off(ctx->use_color), output_json_str(m, "profile") ?: "-");
                if (output_json_str(m, "reason"))
                        printf("%10s %s\n", "", output_json_str(m, "reason"));
        }
        if (json_array_size(mcus) == 0)
                printf("printer.cfg names no MCU\n");
        return FLASHCTL_EXIT_OK;
}

static const Verb update_verbs[] = {
        {
                .name = "status",
                .args = NULL,
                .summary = "What each MCU of the printer runs, against the host's Klipper",
                .help = "     --json              The daemon's answer as JSON\n"
                        "\n"
                        "One line per MCU of printer.cfg ([klipper] printer_config in flashd.conf): its\n"
                        "board, transport, the Klipper version it runs (asked with Klipper's identify\n"
                        "while no one else holds its port), the host's version (git describe of the\n"
                        "Klipper tree), and the state: current, stale (flashctl update rebuilds and\n"
                        "flashes it) or unknown (the next line says why).\n",
                .options = NULL,
                .run = verb_status,
        },
        {},
};

const CommandGroup command_group_update = {
        .name = "update",
        .verbs = update_verbs,
};
