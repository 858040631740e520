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
#include "macros.h"
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

void flashctl_update_status_print(Flashctl *ctx, const json_t *result)
{
        const json_t *mcus, *m;
        size_t i;

        printf("\nHost Klipper: %s", output_json_str(result, "host_version") ?: "unknown");
        if (output_json_str(result, "host_error"))
                printf(" (%s)", output_json_str(result, "host_error"));
        printf("\n");
        if (output_json_str(result, "printer_config_error")) {
                printf("%s\n", output_json_str(result, "printer_config_error"));
                return;
        }
        mcus = json_object_get(result, "mcus");
        if (json_array_size(mcus) == 0) {
                printf("printer.cfg names no MCU\n");
                return;
        }
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
}

static const Verb update_verbs[] = {
        {},
};

const CommandGroup command_group_update = {
        .name = "update",
        .verbs = update_verbs,
};
