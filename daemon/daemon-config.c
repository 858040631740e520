/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h" /* generated: FLASHD_* defaults */
#include "daemon-config.h"
#include "util/log.h"
#include "util/macros.h"

int config_set_string(char **field, const char *value)
{
        char *s = NULL;

        if (value) {
                s = strdup(value);
                if (!s)
                        return -ENOMEM;
        }
        free(*field);
        *field = s;
        return 0;
}

int config_add_boards_dir(Config *c, const char *dir)
{
        char **l = realloc(c->boards_dirs, (c->n_boards_dirs + 2) * sizeof(char *));
        if (!l)
                return -ENOMEM;
        c->boards_dirs = l;
        l[c->n_boards_dirs] = strdup(dir);
        if (!l[c->n_boards_dirs])
                return -ENOMEM;
        l[++c->n_boards_dirs] = NULL;
        return 0;
}

static void strv_free_config(char **l)
{
        for (char **p = l; p && *p; p++)
                free(*p);
        free(l);
}

/* "klipper.service moonraker.service" -> a NULL-terminated list. */
static int config_set_stop_units(Config *c, const char *value)
{
        char **l = calloc(strlen(value) / 2 + 2, sizeof(char *));
        size_t n = 0;

        if (!l)
                return -ENOMEM;
        for (const char *p = value; *p;) {
                size_t k;
                p += strspn(p, " \t,");
                k = strcspn(p, " \t,");
                if (k == 0)
                        break;
                if (!memchr(p, '.', k)) {
                        /* a unit name has a type suffix: klipper.service */
                        strv_free_config(l);
                        return -EINVAL;
                }
                l[n] = strndup(p, k);
                if (!l[n++]) {
                        strv_free_config(l);
                        return -ENOMEM;
                }
                p += k;
        }
        strv_free_config(c->stop_units);
        c->stop_units = n > 0 ? l : NULL;
        if (n == 0)
                free(l);
        return 0;
}

int config_new(Config **ret)
{
        Config *c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->log_level = LOG_INFO;
        c->retry_interrupted = true;
        c->interrupted_expire_sec = 86400;
        c->reboot_wait_sec = 10;
        c->bootloader_timeout_sec = 600;
        c->app_timeout_sec = 60;
        c->uart_baud = 250000;                          /* Klipper's default UART rate */
        if (moonraker_config_init(&c->moonraker) < 0 || /* [moonraker] */
            config_set_string(&c->socket_group, FLASHD_SOCKET_GROUP) < 0 ||
            config_set_string(&c->flash_group, FLASHD_SOCKET_GROUP) < 0 ||
            config_set_string(&c->state_dir, FLASHD_DEFAULT_STATE_DIR) < 0) {
                config_free(c);
                return -ENOMEM;
        }
        *ret = c;
        return 0;
}

Config *config_free(Config *c)
{
        if (!c)
                return NULL;
        free(c->config_file);
        free(c->socket_path);
        free(c->socket_group);
        free(c->flash_group);
        free(c->state_dir);
        free(c->printer_cfg);
        for (size_t i = 0; i < c->n_boards_dirs; i++)
                free(c->boards_dirs[i]);
        free(c->boards_dirs);
        strv_free_config(c->stop_units);
        moonraker_config_done(&c->moonraker); /* [moonraker] */
        klipper_config_done(&c->klipper);     /* [klipper] (daemon/update) */
        free(c);
        return NULL;
}

typedef struct ConfigParse {
        Config *config;
        char *error;
        bool boards_dirs_reset;
} ConfigParse;

_printf_(2, 3) static void parse_error(ConfigParse *p, const char *format, ...)
{
        va_list ap;
        free(p->error);
        va_start(ap, format);
        if (vasprintf(&p->error, format, ap) < 0)
                p->error = NULL;
        va_end(ap);
}

/* inih calls this for every key; returning 0 makes ini_parse report the line. */
static int config_on_key(void *userdata, const char *section, const char *name, const char *value)
{
        ConfigParse *p = userdata;
        Config *c = p->config;
        int r;

        if (streq(section, "moonraker")) /* the Moonraker agent's keys (daemon/moonraker) */
                return moonraker_config_on_key(&c->moonraker, name, value, &p->error);
        if (streq(section, "klipper"))
                return klipper_config_on_key(&c->klipper, name, value, &p->error);
        if (!streq(section, "") && !streq(section, "flashd")) {
                parse_error(p, "unknown section [%s]", section);
                return 0;
        }
        if (streq(name, "socket_group"))
                r = config_set_string(&c->socket_group, value);
        else if (streq(name, "flash_group"))
                r = config_set_string(&c->flash_group, value);
        else if (streq(name, "state_dir"))
                r = value[0] == '/' ? config_set_string(&c->state_dir, value) : -EINVAL;
        else if (streq(name, "socket"))
                r = value[0] == '/' ? config_set_string(&c->socket_path, value) : -EINVAL;
        else if (streq(name, "log_level")) {
                r = log_level_from_string(value);
                if (r >= 0)
                        c->log_level = r;
        } else if (streq(name, "boards_dir")) {
                /* The first boards_dir in a file replaces the defaults. */
                if (!p->boards_dirs_reset) {
                        for (size_t i = 0; i < c->n_boards_dirs; i++)
                                free(c->boards_dirs[i]);
                        c->n_boards_dirs = 0;
                        p->boards_dirs_reset = true;
                }
                r = config_add_boards_dir(c, value);
        } else if (streq(name, "retry_interrupted")) {
                /* flash jobs */
                r = streq(value, "yes") || streq(value, "true") || streq(value, "1")   ? 1
                    : streq(value, "no") || streq(value, "false") || streq(value, "0") ? 0
                                                                                       : -EINVAL;
                if (r >= 0)
                        c->retry_interrupted = r;
        } else if (streq(name, "stop_units")) {
                /* flash jobs: units stopped around a flash, separated by blanks */
                r = config_set_stop_units(c, value);
        } else if (streq(name, "printer_cfg")) {
                /* CAN nodes known by their [mcu NAME] canbus_uuid (daemon/can) */
                r = value[0] == '/' ? 0 : -EINVAL;
                if (r >= 0) {
                        free(c->printer_cfg);
                        c->printer_cfg = strdup(value);
                        r = c->printer_cfg ? 0 : -ENOMEM;
                }
        } else if (streq(name, "uart_baud")) {
                /* Katapult boards on a UART (board DB reboot = uart-request):
                 * the rate Klipper was built for */
                char *end = NULL;
                unsigned long b = strtoul(value, &end, 10);
                r = end && end != value && *end == '\0' && b >= 1200 && b <= 10000000 ? 0 : -EINVAL;
                if (r >= 0)
                        c->uart_baud = (unsigned)b;
        } else if (streq(name, "interrupted_expire_sec")) {
                /* flash jobs: how long an interrupted job may still be retried */
                char *end = NULL;
                double d = strtod(value, &end);
                r = end && end != value && *end == '\0' && d > 0 && d < 1e9 ? 0 : -EINVAL;
                if (r >= 0)
                        c->interrupted_expire_sec = d;
        } else if (streq(name, "reboot_wait_sec") || streq(name, "bootloader_timeout_sec") ||
                   streq(name, "app_timeout_sec")) {
                char *end = NULL;
                double d = strtod(value, &end);
                r = end && end != value && *end == '\0' && d > 0 && d < 1e7 ? 0 : -EINVAL;
                if (r >= 0)
                        *(streq(name, "reboot_wait_sec")          ? &c->reboot_wait_sec
                          : streq(name, "bootloader_timeout_sec") ? &c->bootloader_timeout_sec
                                                                  : &c->app_timeout_sec) = d;
        } else {
                parse_error(p, "unknown key \"%s\"", name);
                return 0;
        }
        if (r == -ENOMEM)
                return 0;
        if (r < 0) {
                parse_error(p, "invalid value \"%s\" for %s", value, name);
                return 0;
        }
        return 1;
}

static int config_finish_parse(ConfigParse *p, int line, const char *what, char **ret_error)
{
        if (line == 0) {
                free(p->error);
                return 0;
        }
        if (ret_error) {
                char *msg = NULL;
                int r = line > 0 ? asprintf(&msg, "%s:%d: %s", what, line,
                                            p->error ? p->error : "syntax error")
                                 : asprintf(&msg, "%s: cannot parse", what);
                *ret_error = r < 0 ? NULL : msg;
        }
        free(p->error);
        return -EINVAL;
}

int config_load_file(Config *c, const char *path, char **ret_error)
{
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        if (!f)
                return -errno;

        ConfigParse p = { .config = c };
        int line = ini_parse_file(f, config_on_key, &p);
        return config_finish_parse(&p, line, path, ret_error);
}

int config_load_string(Config *c, const char *text, char **ret_error)
{
        ConfigParse p = { .config = c };
        int line = ini_parse_string(text, config_on_key, &p);
        return config_finish_parse(&p, line, "(string)", ret_error);
}
