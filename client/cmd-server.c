/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* flashctl status: what the daemon says about itself (server.info) and the printer's MCUs (update.status).
 */
#include <getopt.h>

#include "flashctl.h"
#include "util/macros.h"
#include "output.h"

static int verb_status(Flashctl *ctx, int argc, char **argv)
{
        static const struct option options[] = { {} };
        int c;

        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                return flashctl_usage_error(argv[0], "unexpected option");
        if (optind < argc)
                return flashctl_usage_error(argv[0], "'%s' takes no arguments", argv[0]);

        json_auto_t *result = NULL, *mcus = NULL;
        int r = flashctl_call(ctx, "server.info", NULL, &result, NULL);
        if (r != 0)
                return r;
        /* and what the printer's MCUs run (update.status), printed before the daemon's own fields */
        r = flashctl_update_status_fetch(ctx, &mcus);
        if (r > 1)
                return r;

        if (ctx->json) {
                if (json_is_object(result) && json_is_object(mcus))
                        json_object_update(result, mcus);
                return flashctl_print_json_exit(ctx, result);
        }
        if (!json_is_object(result))
                return flashctl_report_error(ctx, -EBADMSG, "server.info");

        /* The daemon decides what it reports; show all of it, the uptime for a person. */
        json_t *uptime = json_object_get(result, "uptime");
        if (json_is_number(uptime) && json_number_value(uptime) >= 0) {
                char buf[FORMAT_BUF_MAX];
                json_object_set_new(result, "uptime",
                                    json_string(format_duration(buf, (uint64_t)json_number_value(uptime))));
        }
        /* the printer's MCUs first: what a person runs status for */
        if (json_is_object(mcus)) {
                flashctl_update_status_print(ctx, mcus);
                printf("\nflashd:\n");
        }
        output_print_fields(stdout, result, NULL, json_is_object(mcus) ? 2 : 0, 0);
        return FLASHCTL_EXIT_OK;
}

static const Verb server_verbs[] = {
        {
                .name = "status",
                .summary = "Show what each MCU of the printer runs, then the daemon",
                .help = "Prints one line per MCU of printer.cfg ([klipper] printer_config in\n"
                        "flashd.conf, else Klipper's configuration through Moonraker): name, board,\n"
                        "port, transport (usb, uart, can), the Klipper version it runs (Klipper's\n"
                        "identify while nobody holds its port or CAN node, else Klipper's report through\n"
                        "Moonraker), the host's version, the state (current, stale or unknown: the next\n"
                        "line says why) and the build profile; then the host's Klipper version (git\n"
                        "describe of the Klipper tree) and what the daemon says about itself\n"
                        "(server.info). With --json, server.info's object merged with update.status's\n"
                        "(host_version, mcus: [...]).\n",
                .run = verb_status,
        },
        {},
};

const CommandGroup command_group_server = {
        .name = "server",
        .verbs = server_verbs,
};
