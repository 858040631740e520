/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/macros.h"
#include "moonraker/moonraker-config.h"

static int set_string(char **field, const char *value)
{
        char *s = strdup(value);
        if (!s)
                return -ENOMEM;
        free(*field);
        *field = s;
        return 0;
}

int moonraker_config_init(MoonrakerConfig *c)
{
        *c = (MoonrakerConfig){};
        return set_string(&c->agent_name, MOONRAKER_DEFAULT_AGENT_NAME);
}

static void file_roots_clear(MoonrakerConfig *c)
{
        for (size_t i = 0; i < c->n_file_roots; i++)
                free(c->file_roots[i]);
        free(c->file_roots);
        c->file_roots = NULL;
        c->n_file_roots = 0;
}

void moonraker_config_done(MoonrakerConfig *c)
{
        free(c->socket_path);
        free(c->agent_name);
        free(c->file_user);
        file_roots_clear(c);
        *c = (MoonrakerConfig){};
}

int moonraker_config_add_file_root(MoonrakerConfig *c, const char *dir)
{
        char **l = realloc(c->file_roots, (c->n_file_roots + 2) * sizeof(char *));
        if (!l)
                return -ENOMEM;
        c->file_roots = l;
        l[c->n_file_roots] = strdup(dir);
        if (!l[c->n_file_roots])
                return -ENOMEM;
        l[++c->n_file_roots] = NULL;
        return 0;
}

static int parse_bool(const char *v)
{
        if (streq(v, "yes") || streq(v, "true") || streq(v, "1") || streq(v, "on"))
                return 1;
        if (streq(v, "no") || streq(v, "false") || streq(v, "0") || streq(v, "off"))
                return 0;
        return -EINVAL;
}

/* The agent name is what frontends pass as `agent`; Moonraker accepts any
 * string, we keep it to something a person can type. */
static bool agent_name_valid(const char *s)
{
        if (!s[0] || strlen(s) > 64)
                return false;
        return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") == strlen(s);
}

int moonraker_config_on_key(MoonrakerConfig *c, const char *name, const char *value, char **ret_error)
{
        int r;

        if (streq(name, "socket"))
                r = value[0] == '/' ? set_string(&c->socket_path, value) : -EINVAL;
        else if (streq(name, "enable_flashing")) {
                r = parse_bool(value);
                if (r >= 0)
                        c->enable_flashing = r;
        } else if (streq(name, "agent_name"))
                r = agent_name_valid(value) ? set_string(&c->agent_name, value) : -EINVAL;
        else if (streq(name, "file_root")) {
                /* Each line adds a root; the defaults apply only without any. */
                r = value[0] == '/' ? moonraker_config_add_file_root(c, value) : -EINVAL;
        } else if (streq(name, "file_user"))
                r = value[0] ? set_string(&c->file_user, value) : -EINVAL;
        else {
                free(*ret_error);
                (void)asprintf(ret_error, "unknown key \"%s\" in [moonraker]", name);
                return 0;
        }
        if (r == -ENOMEM)
                return 0;
        if (r < 0) {
                free(*ret_error);
                (void)asprintf(ret_error, "invalid value \"%s\" for %s in [moonraker]", value, name);
                return 0;
        }
        return 1;
}
