/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The MCUs of a Klipper printer.cfg: [mcu] (named "mcu") and [mcu NAME]
 * (named NAME) with their `serial:`, `canbus_uuid:` and `canbus_interface:` options, following
 * [include GLOB] relative to the including file as Klipper's configfile.py
 * does. Options are `key: value` or `key = value`; `#` and `;` start a
 * comment; indented lines continue the previous value; a section seen
 * twice is merged (the later value wins). Reads files; logs nothing.
 */

#include <jansson.h>
#include <stddef.h>

typedef struct PrinterMcu {
        char *name;             /* "mcu", "ebb36" */
        char *serial;           /* /dev/serial/by-id/..., or NULL */
        char *canbus_uuid;      /* "0e0d81e4210c", or NULL */
        char *canbus_interface; /* "can1", or NULL: Klipper's default can0 */
} PrinterMcu;

typedef struct PrinterConfig {
        PrinterMcu *mcus;
        size_t n_mcus;
} PrinterConfig;

/* -ENOENT (file), -ELOOP (includes nested deeper than 16), -EINVAL with
 * *ret_error (malloc'd) naming the file and line. */
int printer_config_load(const char *path, PrinterConfig **ret, char **ret_error);
/* The same from text; includes are resolved against `dir`. */
int printer_config_parse(const char *text, const char *dir, PrinterConfig **ret, char **ret_error);
/* The same from Klipper's `configfile` object's `config` field ({section:
 * {option: value}}), as Moonraker's printer.objects.query returns it.
 * -EINVAL when `config` is not an object. */
int printer_config_from_klipper(json_t *config, PrinterConfig **ret);
PrinterConfig *printer_config_free(PrinterConfig *pc);
const PrinterMcu *printer_config_find(const PrinterConfig *pc, const char *name);
