/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * flashd's configuration (named daemon-config, not config, because the
 * generated build config.h owns that name): built-in defaults, then the INI file
 * (/etc/flashd/flashd.conf, see daemon/flashd.conf), then the command line.
 */

#include <stdbool.h>
#include <stddef.h>

#include "moonraker/moonraker-config.h"
#include "update/klipper-config.h"

typedef struct Config {
        char *config_file;  /* NULL: none given, the default path was tried */
        char *socket_path;  /* NULL: socket activation, else FLASHD_DEFAULT_SOCKET */
        char *socket_group; /* group owning the socket (0660); skipped when it does not exist */
        char *flash_group;  /* members may call mutating methods */
        char *state_dir;
        int log_level;      /* LOG_* */
        char **boards_dirs; /* NULL-terminated; later ones override earlier ones */
        size_t n_boards_dirs;

        /* flash jobs (daemon/jobs/job-queue.h) */
        bool retry_interrupted;        /* retry_interrupted = yes|no (default yes) */
        double interrupted_expire_sec; /* interrupted_expire_sec: an interrupted job fails after (86400) */
        double reboot_wait_sec;        /* reboot_wait_sec: show the board's hint after this (10) */
        double bootloader_timeout_sec; /* bootloader_timeout_sec: give up waiting for the bootloader (600) */
        double app_timeout_sec;        /* app_timeout_sec: give up waiting for the app after a flash (60) */
        char **stop_units;  /* stop_units = klipper.service ...: paused around a flash; NULL-terminated */
        unsigned uart_baud; /* uart_baud: Klipper's UART rate for the serial bootloader request (250000) */
        char *printer_cfg;  /* printer_cfg: Klipper's printer.cfg, for the canbus_uuid of its MCUs (none) */

        /* [moonraker]: flashd as a Moonraker agent (daemon/moonraker) */
        MoonrakerConfig moonraker;

        /* [klipper]: the Klipper tree, its builder and printer.cfg (daemon/update) */
        KlipperConfig klipper;
} Config;

int config_new(Config **ret);
Config *config_free(Config *c);

/* Read an INI file into c. A missing file is -ENOENT (the caller decides
 * whether that matters); an unknown key or bad value is -EINVAL with a
 * message in *ret_error naming file and line. */
int config_load_file(Config *c, const char *path, char **ret_error);
/* Parse INI text (for tests). */
int config_load_string(Config *c, const char *text, char **ret_error);

int config_set_string(char **field, const char *value);
int config_add_boards_dir(Config *c, const char *dir);
