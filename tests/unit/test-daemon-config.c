/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <syslog.h>

#include "daemon-config.h"
#include "util/macros.h"
#include "tests.h"

int main(void)
{
        static const struct {
                const char *text;
                int ret;
                const char *socket_group, *flash_group, *state_dir;
                int log_level;
                const char *error_part;
        } cases[] = {
                { "", 0, "flashd", "flashd", "/var/lib/flashd", LOG_INFO, NULL },
                { "# comment\n[flashd]\nsocket_group = printers\nflash_group=wheel\n", 0, "printers",
                  "wheel", "/var/lib/flashd", LOG_INFO, NULL },
                { "state_dir = /srv/flashd\nlog_level = debug\n", 0, "flashd", "flashd", "/srv/flashd",
                  LOG_DEBUG, NULL },
                { "[flashd]\nlog_level = 3\n", 0, "flashd", "flashd", "/var/lib/flashd", LOG_ERR, NULL },
                { "[flashd]\nlog_level = loud\n", -EINVAL, NULL, NULL, NULL, 0, ":2: invalid value" },
                { "[flashd]\nstate_dir = relative\n", -EINVAL, NULL, NULL, NULL, 0, "state_dir" },
                { "[other]\nx = 1\n", -EINVAL, NULL, NULL, NULL, 0, "unknown section" },
                { "[flashd]\n\nfoo = 1\n", -EINVAL, NULL, NULL, NULL, 0, ":3: unknown key \"foo\"" },
                { "[flashd\n", -EINVAL, NULL, NULL, NULL, 0, ":1:" },
                { "printer_cfg = printer.cfg\n", -EINVAL, NULL, NULL, NULL, 0, "printer_cfg" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                Config *c = NULL;
                char *error = NULL;
                CHECK_INT(config_new(&c), 0);
                int r = config_load_string(c, cases[i].text, &error);
                if (r != cases[i].ret)
                        fprintf(stderr, "case %zu: got %d\n", i, r);
                CHECK_INT(r, cases[i].ret);
                if (r >= 0) {
                        CHECK_STR(c->socket_group, cases[i].socket_group);
                        CHECK_STR(c->flash_group, cases[i].flash_group);
                        CHECK_STR(c->state_dir, cases[i].state_dir);
                        CHECK_INT(c->log_level, cases[i].log_level);
                } else {
                        CHECK(error && strstr(error, cases[i].error_part));
                        if (error && !strstr(error, cases[i].error_part))
                                fprintf(stderr, "case %zu: error \"%s\"\n", i, error);
                }
                free(error);
                config_free(c);
        }

        /* boards_dir: the first one in a file replaces the defaults. */
        Config *c = NULL;
        CHECK_INT(config_new(&c), 0);
        CHECK_INT(config_add_boards_dir(c, "/default"), 0);
        CHECK_INT(config_load_string(c, "boards_dir = /a\nboards_dir = /b\n", NULL), 0);
        CHECK_INT(c->n_boards_dirs, 2);
        CHECK_STR(c->boards_dirs[0], "/a");
        CHECK_STR(c->boards_dirs[1], "/b");
        CHECK(c->boards_dirs[2] == NULL);
        config_free(c);

        /* printer_cfg: absolute, the last one wins */
        CHECK_INT(config_new(&c), 0);
        CHECK(c->printer_cfg == NULL);
        CHECK_INT(
                config_load_string(c, "printer_cfg = /a/printer.cfg\nprinter_cfg = /b/printer.cfg\n", NULL),
                0);
        CHECK_STR(c->printer_cfg, "/b/printer.cfg");
        config_free(c);

        /* The example daemon/flashd.conf parses and states the defaults. */
        const char *root = getenv("FLASHD_SOURCE_ROOT");
        if (root) {
                char path[4096];
                Config *def = NULL, *ex = NULL;
                char *error = NULL;
                snprintf(path, sizeof(path), "%s/daemon/flashd.conf", root);
                CHECK_INT(config_new(&def), 0);
                CHECK_INT(config_new(&ex), 0);
                int r = config_load_file(ex, path, &error);
                if (r < 0)
                        fprintf(stderr, "%s: %s\n", path, strna(error));
                CHECK_INT(r, 0);
                CHECK_STR(ex->socket_group, def->socket_group);
                CHECK_STR(ex->flash_group, def->flash_group);
                CHECK_STR(ex->state_dir, def->state_dir);
                CHECK_INT(ex->log_level, def->log_level);
                CHECK_INT(ex->n_boards_dirs, 0);
                CHECK_INT(ex->retry_interrupted, def->retry_interrupted);
                CHECK(ex->reboot_wait_sec == def->reboot_wait_sec);
                CHECK(ex->bootloader_timeout_sec == def->bootloader_timeout_sec);
                CHECK(ex->app_timeout_sec == def->app_timeout_sec);
                free(error);
                config_free(def);
                config_free(ex);
        }
        TESTS_EXIT();
}
