/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/macros.h"
#include "update/klipper-config.h"

void klipper_config_done(KlipperConfig *c)
{
        free(c->path);
        free(c->user);
        free(c->printer_config);
        *c = (KlipperConfig){};
}

static int set(char **field, const char *value)
{
        char *n = strdup(value);
        if (!n)
                return -ENOMEM;
        free(*field);
        *field = n;
        return 0;
}

int klipper_config_on_key(KlipperConfig *c, const char *name, const char *value, char **ret_error)
{
        char **field = NULL;

        if (streq(name, "path"))
                field = &c->path;
        else if (streq(name, "user"))
                field = &c->user;
        else if (streq(name, "printer_config"))
                field = &c->printer_config;
        if (!field) {
                free(*ret_error);
                if (asprintf(ret_error, "unknown key '%s' in [klipper] (known: path, user, printer_config)",
                             name) < 0)
                        *ret_error = NULL;
                return 0;
        }
        if (field != &c->user && value[0] != '/') {
                free(*ret_error);
                if (asprintf(ret_error, "[klipper] %s must be an absolute path, not '%s'", name, value) < 0)
                        *ret_error = NULL;
                return 0;
        }
        return set(field, value) < 0 ? 0 : 1;
}

char *klipper_config_tree(const KlipperConfig *c)
{
        struct passwd *pw;
        char *p;

        if (c->path)
                return strdup(c->path);
        /* KIAUH and the Klipper install scripts put it in the klipper user's home */
        pw = getpwnam("klipper");
        if (!pw || !pw->pw_dir || asprintf(&p, "%s/klipper", pw->pw_dir) < 0)
                return NULL;
        return p;
}
