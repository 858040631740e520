/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * vboard: run a command in a world of emulated boards (see README.md).
 *
 *   vboard [--board NAME [--mode app|dfu] [--quirk Q[=ARG]]... [--port PORT]
 *           [--uid HEX24] [--bootloader rom-dfu|katapult] [--flash FILE@ADDR]]...
 *          [--timing fast|real] [--scale F] [--dump FILE] [--stats FILE]
 *          [--control PATH] [--verbose] -- COMMAND [ARGS...]
 *   vboard [--control PATH] ctl VERB ARGS...
 */

#include <errno.h>
#include <glib-unix.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "can-bus.h"
#include "control.h"
#include "avr-tty.h"
#include "tty-port.h"
#include "usb-device.h"

#define PRELOAD "libumockdev-preload.so.0"

typedef struct BoardSpec {
        char *name;
        BoardMode mode;
        GPtrArray *quirks;
        GPtrArray *flash;
        char *port;
        char *uid;
        BoardBootloader bootloader;
        char *can;      /* --can IFACE */
        char *can_uuid; /* --can-uuid HEX12 */
        char *bridge;   /* --bridge IFACE */
} BoardSpec;

typedef struct Options {
        GPtrArray *boards; /* BoardSpec */
        TimingMode timing;
        double scale;
        char *dump;
        char *stats;
        char *control;
        bool verbose;
        char **command;
} Options;

static void usage(FILE *f)
{
        fputs("Usage: vboard [--board NAME [--mode app|dfu] [--quirk Q[=ARG]]... [--port 1-1.N]\n"
              "               [--uid HEX24] [--bootloader rom-dfu|katapult] [--flash FILE@ADDR]...\n"
              "               [--can IFACE [--can-uuid HEX12]]]...\n"
              "              [--timing fast|real] [--scale F] [--dump FILE] [--stats FILE]\n"
              "              [--control PATH] [--verbose] -- COMMAND [ARGS...]\n"
              "       vboard [--control PATH] ctl VERB [ARGS...]\n"
              "       vboard --list-boards\n"
              "Quirks: short-string garbage-tail error-at-start reset-on-leave no-1200-reboot unplug=N[,M]\n"
              "        string-eio=N can-drop avr-miss-reset\n"
              "Control verbs: list unplug plug boot0-reset reset power-cycle quirk unquirk dump read stats "
              "wait\n"
              "               can-up can-down can-bus-off can-bus-on IFACE\n",
              f);
}

static int fail(const char *format, ...) _printf_(1, 2);
static int fail(const char *format, ...)
{
        va_list ap;
        fputs("vboard: ", stderr);
        va_start(ap, format);
        vfprintf(stderr, format, ap);
        va_end(ap);
        fputc('\n', stderr);
        return 2;
}

static int ctl_main(const char *path, int argc, char **argv)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        GString *line = g_string_new(NULL);
        char buf[4096];
        int fd, ok;
        ssize_t n;

        if (!path)
                return fail("ctl: neither --control nor VBOARD_CONTROL given");
        if (argc < 1)
                return fail("ctl: no verb");
        if (strlen(path) >= sizeof(sa.sun_path))
                return fail("ctl: socket path too long");
        strcpy(sa.sun_path, path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return fail("ctl: cannot connect to %s: %m", path);
        for (int i = 0; i < argc; i++) {
                g_autofree char *q = g_shell_quote(argv[i]);
                if (i)
                        g_string_append_c(line, ' ');
                g_string_append(line, q);
        }
        g_string_append_c(line, '\n');
        if (send(fd, line->str, line->len, MSG_NOSIGNAL) < 0)
                return fail("ctl: send: %m");
        g_string_truncate(line, 0);
        while (!strchr(line->str, '\n') && (n = recv(fd, buf, sizeof(buf), 0)) > 0)
                g_string_append_len(line, buf, n);
        close(fd);
        fputs(line->str, stdout);
        ok = strstr(line->str, "\"ok\":true") != NULL;
        g_string_free(line, TRUE);
        return ok ? 0 : 1;
}

static int parse_args(int argc, char **argv, Options *o)
{
        BoardSpec *cur = NULL;
        int i;

        o->boards = g_ptr_array_new();
        o->timing = TIMING_FAST;
        o->scale = 1.0;
        for (i = 1; i < argc; i++) {
                const char *a = argv[i];
                const char *v = i + 1 < argc ? argv[i + 1] : NULL;

                if (streq(a, "--")) {
                        i++;
                        break;
                }
                if (streq(a, "--help") || streq(a, "-h")) {
                        usage(stdout);
                        exit(0);
                }
                if (streq(a, "--verbose") || streq(a, "-v")) {
                        o->verbose = true;
                        continue;
                }
                if (!v)
                        return fail("%s needs an argument", a);
                i++;
                if (streq(a, "--board")) {
                        if (o->boards->len >= VBOARD_MAX_BOARDS)
                                return fail("at most %d boards", VBOARD_MAX_BOARDS);
                        cur = g_new0(BoardSpec, 1);
                        cur->name = g_strdup(v);
                        cur->mode = BOARD_MODE_APP;
                        cur->quirks = g_ptr_array_new();
                        cur->flash = g_ptr_array_new();
                        g_ptr_array_add(o->boards, cur);
                } else if (streq(a, "--timing")) {
                        o->timing = timing_mode_from_string(v);
                        if (o->timing < 0)
                                return fail("--timing: fast or real, not %s", v);
                } else if (streq(a, "--scale")) {
                        char *end;
                        o->scale = g_ascii_strtod(v, &end);
                        if (*end || o->scale <= 0)
                                return fail("--scale: a positive number, not %s", v);
                } else if (streq(a, "--dump"))
                        o->dump = g_strdup(v);
                else if (streq(a, "--stats"))
                        o->stats = g_strdup(v);
                else if (streq(a, "--control"))
                        o->control = g_strdup(v);
                else if (!cur)
                        return fail("%s must follow a --board", a);
                else if (streq(a, "--mode")) {
                        cur->mode = board_mode_from_string(v);
                        if (cur->mode != BOARD_MODE_APP && cur->mode != BOARD_MODE_DFU &&
                            cur->mode != BOARD_MODE_BOOTSEL)
                                return fail("--mode: app, dfu or bootsel, not %s", v);
                } else if (streq(a, "--quirk"))
                        g_ptr_array_add(cur->quirks, (gpointer)v);
                else if (streq(a, "--flash"))
                        g_ptr_array_add(cur->flash, (gpointer)v);
                else if (streq(a, "--port"))
                        cur->port = g_strdup(v);
                else if (streq(a, "--uid")) {
                        if (strlen(v) != 24 || strspn(v, "0123456789abcdefABCDEF") != 24)
                                return fail("--uid: 24 hex digits, not %s", v);
                        cur->uid = g_strdup(v);
                } else if (streq(a, "--can")) {
                        if (strlen(v) == 0 || strlen(v) > 15)
                                return fail("--can: an interface name of 1 to 15 characters, not %s", v);
                        cur->can = g_strdup(v);
                } else if (streq(a, "--can-uuid")) {
                        CanUuid u;
                        if (can_uuid_parse(v, &u) < 0)
                                return fail("--can-uuid: 12 hex digits, not %s", v);
                        cur->can_uuid = g_strdup(v);
                } else if (streq(a, "--bridge")) {
                        cur->bridge = g_strdup(v);
                } else if (streq(a, "--bootloader")) {
                        cur->bootloader = board_bootloader_from_string(v);
                        if (cur->bootloader < 0)
                                return fail("--bootloader: rom-dfu or katapult, not %s", v);
                } else
                        return fail("unknown option %s (see --help)", a);
        }
        if (i >= argc)
                return fail("no COMMAND given (vboard ... -- COMMAND [ARGS...])");
        o->command = argv + i;
        return 0;
}

static int load_db(World *w)
{
        const char *dir = getenv("FLASHD_BOARDS_DIR");
        const char *dirs[] = { dir && *dir ? dir : FLASHD_SOURCE_BOARDS_DIR, NULL };
        g_autofree char *error = NULL;
        int r = board_db_load(&w->db, dirs, &error);
        if (r < 0)
                return fail("cannot load the board database from %s: %s", dirs[0], error ?: g_strerror(-r));
        return 0;
}

static int list_boards(World *w)
{
        for (size_t i = 0; i < w->db->n_boards; i++)
                for (size_t j = 0; j < w->db->boards[i].n_variants; j++)
                        printf("%s-%s\t%s\t%s\n", w->db->boards[i].name, w->db->boards[i].variants[j].id,
                               w->db->boards[i].variants[j].mcu, w->db->boards[i].title);
        return 0;
}

static int setup_boards(World *w, Options *o)
{
        for (unsigned i = 0; i < o->boards->len; i++) {
                BoardSpec *s = o->boards->pdata[i];
                VBoard *b;
                int r = vboard_new(&b, w, i, s->name);

                if (r == -ENOENT)
                        return fail("unknown board %s (vboard --list-boards shows the database)", s->name);
                if (r < 0)
                        return fail("board %s: %s", s->name, g_strerror(-r));
                w->boards[w->n_boards++] = b;
                if (s->port) {
                        unsigned n;
                        char end;
                        if (sscanf(s->port, "1-1.%u%c", &n, &end) != 1 || n < 1 || n > VBOARD_MAX_BOARDS)
                                return fail("--port: 1-1.N with N in 1..%d, not %s", VBOARD_MAX_BOARDS,
                                            s->port);
                        g_free(b->port);
                        b->port = g_strdup(s->port);
                        b->port_number = n;
                }
                for (unsigned k = 0; k < i; k++)
                        if (streq(w->boards[k]->port, b->port))
                                return fail("boards %u and %u both at port %s", k, i, b->port);
                if (s->uid)
                        vboard_set_uid(b, s->uid);
                /* a plain DFU board's bootloader is what the database says */
                if (!b->plain_dfu && !b->rp2040 && !b->avr)
                        b->bootloader = s->bootloader;
                if (b->avr && s->mode != BOARD_MODE_APP && s->mode != BOARD_MODE_OFF)
                        return fail("--mode %s: an AVR board has only its USB-serial tty (app)",
                                    board_mode_to_string(s->mode));
                /* the ROM mode an RP2040 has is BOOTSEL, an STM32's is DFU */
                if (s->mode == BOARD_MODE_BOOTSEL && !b->rp2040)
                        return fail("--mode bootsel: board %s is no RP2040", s->name);
                if (s->mode == BOARD_MODE_DFU && b->rp2040)
                        s->mode = BOARD_MODE_BOOTSEL;
                if (b->bootloader == BOARD_BOOTLOADER_KATAPULT && !tty_model_for_mode(BOARD_MODE_KATAPULT))
                        return fail("--bootloader katapult: the Katapult model is not built into this "
                                    "vboard yet");
                for (unsigned k = 0; k < s->quirks->len; k++)
                        if (vboard_set_quirk(b, s->quirks->pdata[k], true) < 0) {
                                g_autoptr(GString) known = g_string_new(NULL);
                                for (int q = 0; q < _QUIRK_MAX; q++)
                                        g_string_append_printf(known, " %s%s", quirk_to_string(q),
                                                               q == QUIRK_UNPLUG ? "=N[,M]" : "");
                                return fail("bad quirk %s (known:%s)", (char *)s->quirks->pdata[k],
                                            known->str);
                        }
                if (s->bridge) {
                        if (s->can)
                                return fail("--bridge and --can: a bridge board is on USB");
                        if (s->mode != BOARD_MODE_APP)
                                return fail("--bridge: board %s starts in its application (--mode app)",
                                            s->name);
                        if (b->rp2040 || b->avr)
                                return fail("--bridge: board %s cannot run Klipper's USB-to-CAN bridge",
                                            s->name);
                        r = can_bridge_add(w, b, s->bridge);
                        if (r == -EEXIST)
                                return fail("--bridge %s: the interface exists already (define the bridge "
                                            "before the boards on its interface)",
                                            s->bridge);
                        if (r < 0)
                                return fail("--bridge %s: %s", s->bridge, g_strerror(-r));
                }
                if (s->can_uuid && !s->can)
                        return fail("--can-uuid needs --can IFACE");
                if (s->can) {
                        CanUuid u;
                        if (s->mode != BOARD_MODE_APP)
                                return fail("--can: board %s starts in its application (--mode app)",
                                            s->name);
                        if (s->can_uuid)
                                can_uuid_parse(s->can_uuid, &u);
                        /* on the bus a node is flashed through Katapult; its ROM DFU is on USB only */
                        b->bootloader = BOARD_BOOTLOADER_KATAPULT;
                        r = can_bus_add_node(w, b, s->can, s->can_uuid ? &u : NULL);
                        if (r < 0)
                                return fail("--can %s: %s", s->can, g_strerror(-r));
                }
                vboard_init_flash(b, s->mode);
                for (unsigned k = 0; k < s->flash->len; k++) {
                        r = vboard_load_file(b, s->flash->pdata[k]);
                        if (r < 0)
                                return fail("--flash %s: %s", (char *)s->flash->pdata[k], g_strerror(-r));
                }
        }
        return 0;
}

static int write_outputs(World *w, Options *o)
{
        int ret = 0;

        if (o->dump)
                for (size_t i = 0; i < w->n_boards; i++) {
                        g_autofree char *path =
                                w->n_boards == 1 ? g_strdup(o->dump) : g_strdup_printf("%s.%zu", o->dump, i);
                        g_autoptr(GError) error = NULL;
                        g_mutex_lock(&w->lock);
                        avr_board_sync_flash(w->boards[i]);
                        g_mutex_unlock(&w->lock);
                        if (!g_file_set_contents(path, (const char *)w->boards[i]->flash->data,
                                                 w->boards[i]->flash->size, &error))
                                ret = fail("--dump: %s", error->message);
                }
        if (o->stats) {
                json_t *a = json_array();
                for (size_t i = 0; i < w->n_boards; i++)
                        json_array_append_new(a, vboard_stats(w->boards[i]));
                if (json_dump_file(a, o->stats, JSON_INDENT(2)) < 0)
                        ret = fail("--stats: cannot write %s", o->stats);
                json_decref(a);
        }
        return ret;
}

typedef struct Run {
        GMainLoop *loop;
        GPid pid;
        int status;
        bool exited;
} Run;

static void on_child(GPid pid, gint status, gpointer userdata)
{
        Run *run = userdata;
        run->status = status;
        run->exited = true;
        g_main_loop_quit(run->loop);
}

static gboolean on_signal(gpointer userdata)
{
        Run *run = userdata;
        /* pass it on; we end when the command does */
        if (run->pid > 0)
                kill(run->pid, SIGTERM);
        return G_SOURCE_CONTINUE;
}

static int reexec_under_preload(char **argv)
{
        const char *old = getenv("LD_PRELOAD");
        const char *asan = getenv("ASAN_OPTIONS");
        g_autofree char *preload = old && *old ? g_strdup_printf("%s:%s", old, PRELOAD) : g_strdup(PRELOAD);

        /* emulation.md: an ASan build must not insist on coming first */
        if (!asan || !strstr(asan, "verify_asan_link_order")) {
                g_autofree char *v = asan && *asan ? g_strdup_printf("%s:verify_asan_link_order=0", asan)
                                                   : g_strdup("verify_asan_link_order=0");
                setenv("ASAN_OPTIONS", v, 1);
        }
        setenv("LD_PRELOAD", preload, 1);
        setenv("VBOARD_UNDER_PRELOAD", "1", 1);
        execv("/proc/self/exe", argv);
        return fail("cannot re-execute under %s: %m", PRELOAD);
}

int main(int argc, char **argv)
{
        Options o = {};
        World w = {};
        Run run = {};
        Control *ctl = NULL;
        g_autofree char *tmpdir = NULL, *control_path = NULL;
        int r, ret;

        if (argc >= 2 && streq(argv[1], "ctl"))
                return ctl_main(getenv("VBOARD_CONTROL"), argc - 2, argv + 2);
        if (argc >= 4 && streq(argv[1], "--control") && streq(argv[3], "ctl"))
                return ctl_main(argv[2], argc - 4, argv + 4);
        if (argc >= 2 && streq(argv[1], "--list-boards")) {
                if (load_db(&w) != 0)
                        return 2;
                list_boards(&w);
                board_db_free(w.db);
                return 0;
        }

        r = parse_args(argc, argv, &o);
        if (r != 0)
                return r;
        if (!getenv("VBOARD_UNDER_PRELOAD"))
                return reexec_under_preload(argv);
        unsetenv("VBOARD_UNDER_PRELOAD");

        g_mutex_init(&w.lock);
        w.timing = (Timing){ o.timing, o.scale };
        /* VBOARD_VERBOSE=1 turns the trace on inside tests that do not
         * pass --verbose */
        w.verbose = o.verbose || (getenv("VBOARD_VERBOSE") && !streq(getenv("VBOARD_VERBOSE"), "0"));
        w.start_us = g_get_monotonic_time();
        if (load_db(&w) != 0)
                return 2;
        if (o.boards->len == 0)
                return fail("no --board given");

        w.testbed = umockdev_testbed_new();
        w.testbed_root = umockdev_testbed_get_root_dir(w.testbed);
        w.ioctl_dir = g_build_filename(w.testbed_root, "ioctl", NULL);
        r = setup_boards(&w, &o);
        if (r != 0)
                return r;
        if (usb_topology_add(&w) < 0)
                return fail("cannot create the USB topology");

        if (o.control)
                control_path = g_strdup(o.control);
        else {
                tmpdir = g_dir_make_tmp("vboard-XXXXXX", NULL);
                if (!tmpdir)
                        return fail("cannot make a temporary directory: %m");
                control_path = g_build_filename(tmpdir, "control", NULL);
        }
        r = can_bus_start(&w);
        if (r < 0)
                return fail("cannot start the virtual CAN bus: %s", g_strerror(-r));
        r = control_new(&ctl, &w, control_path);
        if (r < 0)
                return fail("control socket %s: %s", control_path, g_strerror(-r));
        setenv("VBOARD_CONTROL", control_path, 1);

        for (size_t i = 0; i < w.n_boards; i++) {
                VBoard *b = w.boards[i];
                r = vboard_power_up(b, b->initial_mode);
                if (r < 0)
                        return fail("cannot power up board %zu: %s", i, g_strerror(-r));
        }

        run.loop = g_main_loop_new(NULL, FALSE);
        {
                g_autoptr(GError) error = NULL;
                if (!g_spawn_async(NULL, o.command, NULL,
                                   G_SPAWN_SEARCH_PATH | G_SPAWN_DO_NOT_REAP_CHILD |
                                           G_SPAWN_CHILD_INHERITS_STDIN,
                                   NULL, NULL, &run.pid, &error))
                        return fail("cannot run %s: %s", o.command[0], error->message);
        }
        g_child_watch_add(run.pid, on_child, &run);
        g_unix_signal_add(SIGINT, on_signal, &run);
        g_unix_signal_add(SIGTERM, on_signal, &run);
        g_main_loop_run(run.loop);

        ret = write_outputs(&w, &o);
        if (WIFEXITED(run.status))
                ret = ret ? ret : WEXITSTATUS(run.status);
        else if (WIFSIGNALED(run.status))
                ret = 128 + WTERMSIG(run.status);

        control_free(ctl);
        can_bus_free(&w);
        if (tmpdir) {
                rmdir(tmpdir);
        }
        for (size_t i = 0; i < w.n_boards; i++)
                w.boards[i] = vboard_free(w.boards[i]);
        for (size_t i = 0; i < G_N_ELEMENTS(w.usb_by_devnum); i++)
                usb_device_free(w.usb_by_devnum[i]);
        for (GSList *l = w.retired_usb; l; l = l->next)
                usb_device_free(l->data);
        g_slist_free(w.retired_usb);
        g_object_unref(w.testbed);
        board_db_free(w.db);
        g_main_loop_unref(run.loop);
        g_free(w.testbed_root);
        g_free(w.ioctl_dir);
        return ret;
}
