/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Build profiles: a Klipper .config (menuconfig's output) and the board it
 * is for, kept in <state_dir>/profiles/ as NAME.config (the copy builds
 * use) and NAME.json ({"name","board","mcu_name","mcu","kconfig"}).
 * `mcu_name` ties the profile to a printer.cfg MCU ("mcu", or NAME of
 * [mcu NAME]); `mcu` is the .config's CONFIG_MCU. Profile objects are the
 * JSON of proto/API.md.
 */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Letters, digits, '-', '_', '.', not starting with '.'; at most 64. */
bool profile_name_valid(const char *name);
/* CONFIG_MCU="..." of a Kconfig text (malloc'd), or NULL. */
char *profile_kconfig_mcu(const char *kconfig, size_t len);

/* -EEXIST when the name is taken (unless replace), -EINVAL when the
 * .config names no CONFIG_MCU (*ret_error). */
int profile_store_add(const char *state_dir, const char *name, const char *board, const char *mcu_name,
                      const char *kconfig, size_t len, bool replace, json_t **ret, char **ret_error);
int profile_store_get(const char *state_dir, const char *name, json_t **ret);
/* Array sorted by name. */
int profile_store_list(const char *state_dir, json_t **ret);
int profile_store_remove(const char *state_dir, const char *name);
/* The profile whose mcu_name is `mcu_name` (first by name), or -ENOENT. */
int profile_store_find_mcu(const char *state_dir, const char *mcu_name, json_t **ret);
