/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The Moonraker agent's pure parts: the [moonraker] keys (through the real
 * config parser) and image.path resolution inside the file roots.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon-config.h"
#include "util/macros.h"
#include "moonraker/moonraker-agent.h"
#include "moonraker/moonraker-files.h"
#include "tests.h"

static const struct {
        const char *text;
        bool ok;
        const char *socket;
        bool enable_flashing;
        const char *agent_name;
        size_t n_roots;
} config_cases[] = {
        { "", true, NULL, false, "flashd", 0 },
        { "[moonraker]\nsocket = /run/m.sock\n", true, "/run/m.sock", false, "flashd", 0 },
        { "[moonraker]\nsocket = /s\nenable_flashing = yes\nagent_name = fl-2\n", true, "/s", true, "fl-2",
          0 },
        { "[moonraker]\nenable_flashing = off\nfile_root = /a\nfile_root = /b\n", true, NULL, false,
          "flashd", 2 },
        { "[moonraker]\nsocket = relative.sock\n", false },
        { "[moonraker]\nenable_flashing = maybe\n", false },
        { "[moonraker]\nagent_name = has space\n", false },
        { "[moonraker]\nagent_name =\n", false },
        { "[moonraker]\nfile_root = gcodes\n", false },
        { "[moonraker]\nflash_group = x\n", false }, /* a [flashd] key in the wrong section */
        { "[moonrakr]\nsocket = /s\n", false },
};

static void test_config(void)
{
        for (size_t i = 0; i < ELEMENTSOF(config_cases); i++) {
                Config *c = NULL;
                char *error = NULL;
                CHECK_INT(config_new(&c), 0);
                int r = config_load_string(c, config_cases[i].text, &error);
                if ((r == 0) != config_cases[i].ok)
                        fprintf(stderr, "case %zu: r=%d error=%s\n", i, r, strna(error));
                CHECK_INT(r == 0, config_cases[i].ok);
                if (!config_cases[i].ok) {
                        CHECK(error && strstr(error, ":2:")); /* names the line */
                } else {
                        CHECK(streq_ptr(c->moonraker.socket_path, config_cases[i].socket));
                        CHECK_INT(c->moonraker.enable_flashing, config_cases[i].enable_flashing);
                        CHECK_STR(c->moonraker.agent_name, config_cases[i].agent_name);
                        CHECK_INT(c->moonraker.n_file_roots, config_cases[i].n_roots);
                }
                free(error);
                config_free(c);
        }
}

static void write_file(const char *path, mode_t mode)
{
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
        CHECK(fd >= 0);
        CHECK(write(fd, "x", 1) == 1);
        close(fd);
}

static void test_file_open(void)
{
        char tmp[] = "/tmp/test-moonraker-XXXXXX", p[PATH_MAX], q[PATH_MAX];
        CHECK(mkdtemp(tmp));
#define P(fmt, ...) (snprintf(p, sizeof(p), "%s/" fmt, tmp, ##__VA_ARGS__), p)
        CHECK(mkdir(P("printer_data"), 0755) == 0);
        CHECK(mkdir(P("printer_data/gcodes"), 0755) == 0);
        CHECK(mkdir(P("printer_data/gcodes/sub"), 0755) == 0);
        CHECK(mkdir(P("printer_data/config"), 0755) == 0);
        CHECK(mkdir(P("outside"), 0755) == 0);
        write_file(P("printer_data/gcodes/klipper.bin"), 0644);
        write_file(P("printer_data/gcodes/sub/a.bin"), 0644);
        write_file(P("printer_data/config/fw.bin"), 0644);
        write_file(P("outside/secret.bin"), 0644);
        snprintf(q, sizeof(q), "%s/outside/secret.bin", tmp);
        CHECK(symlink(q, P("printer_data/gcodes/out.bin")) == 0);
        snprintf(q, sizeof(q), "%s/printer_data/config/fw.bin", tmp);
        CHECK(symlink(q, P("printer_data/gcodes/in.bin")) == 0); /* a link between roots is fine */
        CHECK(symlink("/", P("printer_data/gcodes/rootdir")) == 0);

        MoonrakerConfig mc;
        CHECK_INT(moonraker_config_init(&mc), 0);
        CHECK_INT(moonraker_config_add_file_root(&mc, P("printer_data/gcodes")), 0);
        CHECK_INT(moonraker_config_add_file_root(&mc, P("printer_data/config")), 0);
        char **roots = moonraker_file_roots(&mc, getuid());
        CHECK(roots && roots[0] && roots[1] && !roots[2]);

        PeerCred *me = NULL;
        CHECK_INT(peer_cred_new(&me, getpid(), getuid(), getgid(), NULL, 0), 0);

        static const struct {
                const char *path; /* "@" is replaced by the temp dir */
                int expect;       /* 0 or the negative errno */
                const char *resolved_tail;
        } cases[] = {
                { "gcodes/klipper.bin", 0, "/printer_data/gcodes/klipper.bin" },
                { "gcodes/sub/a.bin", 0, "/printer_data/gcodes/sub/a.bin" },
                { "config/fw.bin", 0, "/printer_data/config/fw.bin" },
                { "gcodes/in.bin", 0, "/printer_data/config/fw.bin" },
                { "@/printer_data/gcodes/klipper.bin", 0, "/printer_data/gcodes/klipper.bin" },
                { "gcodes/out.bin", -EXDEV },
                { "gcodes/../../outside/secret.bin", -EXDEV },
                { "@/outside/secret.bin", -EXDEV },
                { "gcodes/rootdir/etc/passwd", -EXDEV },
                { "printer_data/gcodes/klipper.bin", -EXDEV }, /* no root named printer_data */
                { "gcodes", -EXDEV },                          /* a root name alone is no file */
                { "gcodes/missing.bin", -ENOENT },
                { "gcodes/sub", -EISDIR }, /* a directory */
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                char path[PATH_MAX], *resolved = NULL, *message = NULL;
                int fd = -EBADF;
                if (cases[i].path[0] == '@')
                        snprintf(path, sizeof(path), "%s%s", tmp, cases[i].path + 1);
                else
                        snprintf(path, sizeof(path), "%s", cases[i].path);
                int r = moonraker_file_open(roots, me, path, &fd, &resolved, &message);
                if (r != cases[i].expect)
                        fprintf(stderr, "case %s: r=%d (%s)\n", path, r, strna(message));
                CHECK_INT(r, cases[i].expect);
                if (r == 0) {
                        CHECK(fd >= 0);
                        size_t n = strlen(resolved), t = strlen(cases[i].resolved_tail);
                        CHECK(n > t && streq(resolved + n - t, cases[i].resolved_tail));
                        close(fd);
                } else
                        CHECK(message && message[0]); /* a sentence for the frontend */
                free(resolved);
                free(message);
        }

        /* No roots at all: every path is refused with a message saying why. */
        char *none[] = { NULL }, *message = NULL, *resolved = NULL;
        int fd = -EBADF;
        CHECK_INT(moonraker_file_open(none, me, "gcodes/klipper.bin", &fd, &resolved, &message), -EXDEV);
        CHECK(message && strstr(message, "file_root"));
        free(message);

        peer_cred_free(me);
        moonraker_file_roots_free(roots);
        moonraker_config_done(&mc);
        char cmd[PATH_MAX + 16];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
        CHECK(system(cmd) == 0);
#undef P
}

static void test_state_names(void)
{
        for (MoonrakerState s = 0; s < _MOONRAKER_STATE_MAX; s++)
                CHECK(moonraker_state_to_string(s) != NULL);
        CHECK(moonraker_state_to_string(_MOONRAKER_STATE_MAX) == NULL);
}

int main(void)
{
        test_config();
        test_file_open();
        test_state_names();
        TESTS_EXIT();
}
