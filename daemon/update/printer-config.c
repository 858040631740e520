/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <errno.h>
#include <glob.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/macros.h"
#include "update/printer-config.h"

#define INCLUDE_DEPTH_MAX 16
#define CONFIG_FILE_MAX   (4U * 1024U * 1024U)

PrinterConfig *printer_config_free(PrinterConfig *pc)
{
        if (!pc)
                return NULL;
        for (size_t i = 0; i < pc->n_mcus; i++) {
                free(pc->mcus[i].name);
                free(pc->mcus[i].serial);
                free(pc->mcus[i].canbus_uuid);
                free(pc->mcus[i].canbus_interface);
        }
        free(pc->mcus);
        free(pc);
        return NULL;
}

const PrinterMcu *printer_config_find(const PrinterConfig *pc, const char *name)
{
        for (size_t i = 0; pc && i < pc->n_mcus; i++)
                if (streq(pc->mcus[i].name, name))
                        return &pc->mcus[i];
        return NULL;
}

static PrinterMcu *mcu_get(PrinterConfig *pc, const char *name)
{
        PrinterMcu *n;

        for (size_t i = 0; i < pc->n_mcus; i++)
                if (streq(pc->mcus[i].name, name))
                        return &pc->mcus[i];
        n = reallocarray(pc->mcus, pc->n_mcus + 1, sizeof(*n));
        if (!n)
                return NULL;
        pc->mcus = n;
        n = &pc->mcus[pc->n_mcus];
        *n = (PrinterMcu){ .name = strdup(name) };
        if (!n->name)
                return NULL;
        pc->n_mcus++;
        return n;
}

static char *strip(char *s)
{
        char *e;
        while (isspace((unsigned char)*s))
                s++;
        e = s + strlen(s);
        while (e > s && isspace((unsigned char)e[-1]))
                *--e = '\0';
        return s;
}

static int set_error(char **ret_error, int r, const char *file, unsigned line, const char *what)
{
        if (ret_error) {
                free(*ret_error);
                if (asprintf(ret_error, "%s:%u: %s", file, line, what) < 0)
                        *ret_error = NULL;
        }
        return r;
}

static int load_file(PrinterConfig *pc, const char *path, unsigned depth, char **ret_error);

static int parse_text(PrinterConfig *pc, const char *text, const char *file, const char *dir, unsigned depth,
                      char **ret_error)
{
        _cleanup_free_ char *copy = strdup(text);
        _cleanup_free_ char *section = NULL;
        char *save = NULL, *line;
        unsigned lineno = 0;
        int r;

        if (!copy)
                return -ENOMEM;
        /* Klipper appends SAVE_CONFIG's block after this marker, commented out: it is config too */
        for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char *s, *c;
                lineno++;
                if (strncmp(line, "#*# ", 4) == 0)
                        line += 4;
                /* a comment starts at # or ; (Klipper: only after whitespace or at the start) */
                for (c = line; *c; c++)
                        if ((*c == '#' || *c == ';') && (c == line || isspace((unsigned char)c[-1]))) {
                                *c = '\0';
                                break;
                        }
                if (isspace((unsigned char)line[0]))
                        continue; /* continuation of a multi-line value: not an option we read */
                s = strip(line);
                if (!*s)
                        continue;
                if (*s == '[') {
                        char *end = strchr(s, ']');
                        if (!end)
                                return set_error(ret_error, -EINVAL, file, lineno,
                                                 "section header without ']'");
                        *end = '\0';
                        s = strip(s + 1);
                        if (strncmp(s, "include ", 8) == 0) {
                                _cleanup_free_ char *pattern = NULL;
                                glob_t g = {};
                                const char *inc = strip(s + 8);
                                if (depth >= INCLUDE_DEPTH_MAX)
                                        return set_error(ret_error, -ELOOP, file, lineno,
                                                         "includes nested too deeply");
                                if (asprintf(&pattern, "%s/%s", inc[0] == '/' ? "" : dir, inc) < 0)
                                        return -ENOMEM;
                                r = glob(pattern, 0, NULL, &g);
                                if (r == GLOB_NOMATCH && !strpbrk(inc, "*?[")) {
                                        globfree(&g);
                                        return set_error(ret_error, -ENOENT, file, lineno,
                                                         "include file does not exist");
                                }
                                /* glob sorts, as configfile.py does */
                                for (size_t i = 0; r == 0 && i < g.gl_pathc; i++) {
                                        r = load_file(pc, g.gl_pathv[i], depth + 1, ret_error);
                                        if (r < 0) {
                                                globfree(&g);
                                                return r;
                                        }
                                }
                                globfree(&g);
                                free(section);
                                section = NULL;
                                continue;
                        }
                        free(section);
                        section = strdup(s);
                        if (!section)
                                return -ENOMEM;
                        continue;
                }
                if (!section)
                        continue;
                const char *mcu_name = NULL;
                if (streq(section, "mcu"))
                        mcu_name = "mcu";
                else if (strncmp(section, "mcu ", 4) == 0)
                        mcu_name = strip(section + 4);
                if (!mcu_name || !*mcu_name)
                        continue;
                c = s + strcspn(s, ":=");
                if (!*c)
                        continue;
                *c = '\0';
                const char *key = strip(s), *value = strip(c + 1);
                char **field;
                PrinterMcu *m = mcu_get(pc, mcu_name);
                if (!m)
                        return -ENOMEM;
                if (streq(key, "serial"))
                        field = &m->serial;
                else if (streq(key, "canbus_uuid"))
                        field = &m->canbus_uuid;
                else if (streq(key, "canbus_interface"))
                        field = &m->canbus_interface;
                else
                        continue;
                free(*field);
                *field = *value ? strdup(value) : NULL;
                if (*value && !*field)
                        return -ENOMEM;
        }
        return 0;
}

static int load_file(PrinterConfig *pc, const char *path, unsigned depth, char **ret_error)
{
        _cleanup_free_ char *text = NULL, *pathcopy = strdup(path);
        _cleanup_(fclosep) FILE *f = NULL;
        size_t n;

        if (!pathcopy)
                return -ENOMEM;
        f = fopen(path, "re");
        if (!f)
                return set_error(ret_error, -errno, path, 0, "cannot open");
        text = malloc(CONFIG_FILE_MAX + 1);
        if (!text)
                return -ENOMEM;
        n = fread(text, 1, CONFIG_FILE_MAX, f);
        text[n] = '\0';
        return parse_text(pc, text, path, dirname(pathcopy), depth, ret_error);
}

int printer_config_parse(const char *text, const char *dir, PrinterConfig **ret, char **ret_error)
{
        PrinterConfig *pc = calloc(1, sizeof(*pc));
        int r;

        if (!pc)
                return -ENOMEM;
        r = parse_text(pc, text, "printer.cfg", dir, 0, ret_error);
        if (r < 0) {
                printer_config_free(pc);
                return r;
        }
        *ret = pc;
        return 0;
}

int printer_config_load(const char *path, PrinterConfig **ret, char **ret_error)
{
        PrinterConfig *pc = calloc(1, sizeof(*pc));
        int r;

        if (!pc)
                return -ENOMEM;
        r = load_file(pc, path, 0, ret_error);
        if (r < 0) {
                printer_config_free(pc);
                return r;
        }
        *ret = pc;
        return 0;
}

int printer_config_from_klipper(json_t *config, PrinterConfig **ret)
{
        PrinterConfig *pc;
        const char *section;
        json_t *options;

        if (!json_is_object(config))
                return -EINVAL;
        pc = calloc(1, sizeof(*pc));
        if (!pc)
                return -ENOMEM;
        /* Klipper already merged includes and SAVE_CONFIG, and keeps the
         * file's order of sections */
        json_object_foreach (config, section, options) {
                const char *mcu_name = NULL;
                if (streq(section, "mcu"))
                        mcu_name = "mcu";
                else if (strncmp(section, "mcu ", 4) == 0)
                        mcu_name = section + 4 + strspn(section + 4, " ");
                if (!mcu_name || !*mcu_name || !json_is_object(options))
                        continue;
                PrinterMcu *m = mcu_get(pc, mcu_name);
                if (!m) {
                        printer_config_free(pc);
                        return -ENOMEM;
                }
                const char *keys[] = { "serial", "canbus_uuid", "canbus_interface" };
                char **fields[] = { &m->serial, &m->canbus_uuid, &m->canbus_interface };
                for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                        const char *v = json_string_value(json_object_get(options, keys[i]));
                        _cleanup_free_ char *copy = v ? strdup(v) : NULL;
                        if (v && !copy) {
                                printer_config_free(pc);
                                return -ENOMEM;
                        }
                        const char *value = copy ? strip(copy) : NULL;
                        free(*fields[i]);
                        *fields[i] = value && *value ? strdup(value) : NULL;
                }
        }
        *ret = pc;
        return 0;
}
