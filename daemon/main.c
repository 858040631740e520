/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * flashd: command line, configuration, the sd-event main loop, sd_notify
 * and the watchdog. Everything else lives in libflashd-core.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "config.h"
#include "daemon-config.h"
#include "util/fatal-signal.h"
#include "util/log.h"
#include "manager.h"
#include "server/rpc.h"
#include "server/server.h"

static void help(void)
{
        printf("Usage: flashd [OPTIONS]\n"
               "Flash firmware onto 3D-printer boards; serve the JSON-RPC API on a Unix socket.\n\n"
               "  --socket PATH       listen on PATH (default: socket activation, else %s)\n"
               "  --state-dir DIR     keep state in DIR (default %s)\n"
               "  --config FILE       read FILE (default %s, if it exists)\n"
               "  --log-level LEVEL   debug, info, notice, warning, err\n"
               "  --boards-dir DIR    board database directory (repeatable; replaces the defaults\n"
               "                      %s and %s)\n"
               "  --moonraker PATH    connect to Moonraker's Unix socket PATH as an agent\n"
               "                      ([moonraker] socket in flashd.conf)\n"
               "  --list-methods      print the registered JSON-RPC methods and exit\n"
               "  --help, --version\n",
               FLASHD_DEFAULT_SOCKET, FLASHD_DEFAULT_STATE_DIR, FLASHD_DEFAULT_CONFIG, FLASHD_BOARDS_DATADIR,
               FLASHD_BOARDS_CONFDIR);
}

enum {
        ARG_SOCKET = 0x100,
        ARG_STATE_DIR,
        ARG_CONFIG,
        ARG_LOG_LEVEL,
        ARG_BOARDS_DIR,
        ARG_MOONRAKER,
        ARG_LIST_METHODS,
        ARG_VERSION,
};

typedef struct Args {
        const char *socket, *state_dir, *config, *log_level;
        const char *moonraker; /* --moonraker PATH */
        const char *boards_dirs[32];
        size_t n_boards_dirs;
} Args;

/* Returns 1 to go on, 0 to exit successfully, < 0 on a usage error. */
static int parse_argv(int argc, char **argv, Args *a)
{
        static const struct option options[] = {
                { "socket", required_argument, NULL, ARG_SOCKET },
                { "state-dir", required_argument, NULL, ARG_STATE_DIR },
                { "config", required_argument, NULL, ARG_CONFIG },
                { "log-level", required_argument, NULL, ARG_LOG_LEVEL },
                { "boards-dir", required_argument, NULL, ARG_BOARDS_DIR },
                { "moonraker", required_argument, NULL, ARG_MOONRAKER },
                { "list-methods", no_argument, NULL, ARG_LIST_METHODS },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                {},
        };
        int c;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case ARG_SOCKET:
                        a->socket = optarg;
                        break;
                case ARG_STATE_DIR:
                        a->state_dir = optarg;
                        break;
                case ARG_CONFIG:
                        a->config = optarg;
                        break;
                case ARG_LOG_LEVEL:
                        if (log_level_from_string(optarg) < 0) {
                                fprintf(stderr, "flashd: unknown log level \"%s\"\n", optarg);
                                return -EINVAL;
                        }
                        a->log_level = optarg;
                        break;
                case ARG_MOONRAKER:
                        if (optarg[0] != '/') {
                                fprintf(stderr, "flashd: --moonraker needs an absolute path\n");
                                return -EINVAL;
                        }
                        a->moonraker = optarg;
                        break;
                case ARG_BOARDS_DIR:
                        if (a->n_boards_dirs >= ELEMENTSOF(a->boards_dirs)) {
                                fprintf(stderr, "flashd: too many --boards-dir\n");
                                return -EINVAL;
                        }
                        a->boards_dirs[a->n_boards_dirs++] = optarg;
                        break;
                case ARG_LIST_METHODS: {
                        json_auto_t *names = rpc_method_names();
                        size_t i;
                        json_t *n;
                        json_array_foreach (names, i, n)
                                printf("%s\n", json_string_value(n));
                        return 0;
                }
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("flashd %s\n", FLASHD_VERSION);
                        return 0;
                default:
                        return -EINVAL;
                }
        if (optind < argc) {
                fprintf(stderr, "flashd: unexpected argument \"%s\"\n", argv[optind]);
                return -EINVAL;
        }
        return 1;
}

static int load_config(const Args *a, Config **ret)
{
        Config *c = NULL;
        _cleanup_free_ char *error = NULL;
        int r;

        r = config_new(&c);
        if (r < 0)
                return log_oom();
        r = config_load_file(c, a->config ? a->config : FLASHD_DEFAULT_CONFIG, &error);
        if (r == -ENOENT && !a->config)
                r = 0; /* the default file is optional; a named one is not */
        if (r < 0) {
                config_free(c);
                if (error)
                        return log_error_errno(r, "%s", error);
                return log_error_errno(r, "cannot read %s: %m", a->config);
        }
        if ((a->socket && config_set_string(&c->socket_path, a->socket) < 0) ||
            (a->state_dir && config_set_string(&c->state_dir, a->state_dir) < 0) ||
            (a->moonraker && config_set_string(&c->moonraker.socket_path, a->moonraker) < 0) ||
            (a->config && config_set_string(&c->config_file, a->config) < 0)) {
                config_free(c);
                return log_oom();
        }
        if (a->log_level)
                c->log_level = log_level_from_string(a->log_level);
        if (a->n_boards_dirs > 0) {
                for (size_t i = 0; i < c->n_boards_dirs; i++)
                        free(c->boards_dirs[i]);
                c->n_boards_dirs = 0;
                for (size_t i = 0; i < a->n_boards_dirs; i++)
                        if (config_add_boards_dir(c, a->boards_dirs[i]) < 0) {
                                config_free(c);
                                return log_oom();
                        }
        } else if (c->n_boards_dirs == 0 && getenv("FLASHD_BOARDS_DIR")) {
                /* The test environment points at the source tree's boards. */
                if (config_add_boards_dir(c, getenv("FLASHD_BOARDS_DIR")) < 0) {
                        config_free(c);
                        return log_oom();
                }
        }
        *ret = c;
        return 0;
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
        Manager *m = userdata;

        log_info("received %s, stopping", strsignal((int)si->ssi_signo));
        m->stopping = true;
        sd_notify(false, "STOPPING=1\nSTATUS=Stopping");
        return sd_event_exit(sd_event_source_get_event(s), 0);
}

int main(int argc, char **argv)
{
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        _cleanup_(manager_freep) Manager *m = NULL;
        Config *config = NULL;
        Args args = {};
        int r;

        log_open();
        fatal_signal_log_install();
        r = parse_argv(argc, argv, &args);
        if (r <= 0)
                return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;

        r = load_config(&args, &config);
        if (r < 0)
                return EXIT_FAILURE;
        log_set_max_level(config->log_level);

        /* SIGPIPE: a client closing mid-write must not kill us (we use
         * MSG_NOSIGNAL, but libraries may write too). */
        signal(SIGPIPE, SIG_IGN);
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        /* Clients, jobs and devices all need fds; a low soft limit would
         * make accept() fail long before the hard limit is near. */
        server_raise_fd_limit();

        r = sd_event_default(&event);
        if (r < 0) {
                config_free(config);
                return log_error_errno(r, "cannot create the event loop: %m"), EXIT_FAILURE;
        }
        r = manager_new(&m, event, config);
        if (r < 0)
                return EXIT_FAILURE;

        sd_event_add_signal(event, NULL, SIGTERM, on_signal, m);
        sd_event_add_signal(event, NULL, SIGINT, on_signal, m);
        /* Pings the watchdog at half of WATCHDOG_USEC, from the loop itself,
         * so a stuck loop stops the pings. */
        r = sd_event_set_watchdog(event, true);
        if (r < 0)
                log_warning_errno(r, "cannot set up the watchdog: %m");

        r = manager_start(m);
        if (r < 0) {
                sd_notifyf(false, "STATUS=Failed to start: %s", strerror(-r));
                return EXIT_FAILURE;
        }

        sd_notifyf(false, "READY=1\nSTATUS=Serving %zu devices, %zu boards in the database",
                   inventory_count(m->inventory), m->boards->n_boards);
        log_info("flashd %s ready", FLASHD_VERSION);

        r = sd_event_loop(event);
        if (r < 0)
                return log_error_errno(r, "event loop failed: %m"), EXIT_FAILURE;
        log_info("stopped");
        return EXIT_SUCCESS;
}
