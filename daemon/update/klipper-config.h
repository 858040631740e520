/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The [klipper] section of flashd.conf: where the user's Klipper tree is,
 * who builds in it, and the printer's configuration. Config embeds one.
 *   path = DIR            the Klipper source tree (default ~klipper/klipper,
 *                         the home of user `klipper`)
 *   user = NAME|UID       who runs make and git there (default: the owner
 *                         of path; never root)
 *   printer_config = FILE printer.cfg, read for the [mcu] sections
 */

typedef struct KlipperConfig {
        char *path;
        char *user;
        char *printer_config;
} KlipperConfig;

void klipper_config_done(KlipperConfig *c);
/* inih's convention: 1 on success, 0 on an unknown key or bad value with *ret_error. */
int klipper_config_on_key(KlipperConfig *c, const char *name, const char *value, char **ret_error);
/* path, or the default (malloc'd); NULL without a default either. */
char *klipper_config_tree(const KlipperConfig *c);
