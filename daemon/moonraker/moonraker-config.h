/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The [moonraker] section of flashd.conf: flashd as a Moonraker agent
 * (daemon/moonraker/moonraker-agent.h, proto/API.md "For frontend
 * developers"). Kept apart from daemon-config.c so the agent owns its keys;
 * Config embeds one MoonrakerConfig.
 */

#include <stdbool.h>
#include <stddef.h>

#define MOONRAKER_DEFAULT_AGENT_NAME "flashd"

typedef struct MoonrakerConfig {
        char *socket_path;    /* socket = PATH; NULL: no agent */
        bool enable_flashing; /* enable_flashing = yes|no (default no) */
        char *agent_name;     /* agent_name (default "flashd") */
        /* file_root = DIR (repeatable): directories a frontend's image.path
         * may point into; none: <home of file_user>/printer_data/gcodes and
         * .../config, Moonraker's default roots. */
        char **file_roots; /* NULL-terminated */
        size_t n_file_roots;
        /* file_user = NAME|UID: whose permissions open image.path; NULL:
         * the user Moonraker runs as (SO_PEERCRED of its socket). */
        char *file_user;
} MoonrakerConfig;

int moonraker_config_init(MoonrakerConfig *c);
void moonraker_config_done(MoonrakerConfig *c);

/* One key of [moonraker], in inih's convention: 1 on success, 0 on an
 * unknown key, a bad value or out of memory, with a message in *ret_error
 * (the caller names file and line). */
int moonraker_config_on_key(MoonrakerConfig *c, const char *name, const char *value, char **ret_error);

int moonraker_config_add_file_root(MoonrakerConfig *c, const char *dir);
