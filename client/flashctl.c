/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * flashctl: the command-line client of flashd.
 *
 * This file holds what every command shares: global options, the command
 * table, help, connecting, and turning errors into messages and exit codes.
 * The commands live in one file per group (cmd-*.c); see flashctl.h for how
 * to add a group.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "flashctl.h"
#include "util/macros.h"
#include "output.h"

/* One line per command group; order is the order of `flashctl --help`. */
const CommandGroup *const command_groups[] = {
        &command_group_device, &command_group_watch,   &command_group_job,    &command_group_rule,
        &command_group_server, &command_group_profile, &command_group_update, NULL,
};

static const char *program = "flashctl";

/*
 * With --json, a failing command prints one JSON object on stdout instead
 * of messages on stderr, whichever command and whichever path failed:
 * stderr is collected while the verb runs, and at exit turned into
 *   {"error": {"message", "exit", "code"?, "data"?, "hints"?, "details"?}}
 * (code and data: the daemon's error, when it answered with one). What a
 * successful command wrote to stderr is passed on unchanged.
 */
static struct {
        FILE *real_stderr; /* non-NULL while collecting */
        char *text;
        size_t size;
        json_t *daemon_error;
        bool result_printed; /* the verb's JSON result already says how it failed */
} json_errors;

static void json_errors_begin(void)
{
        FILE *f = open_memstream(&json_errors.text, &json_errors.size);
        if (!f)
                return; /* messages stay on stderr: still seen */
        json_errors.real_stderr = stderr;
        stderr = f;
}

static json_t *json_errors_object(int status)
{
        json_t *hints = json_array(), *details = json_array();
        char *message = NULL, *save = NULL;
        json_t *o;

        for (char *line = strtok_r(json_errors.text, "\n", &save); line;
             line = strtok_r(NULL, "\n", &save)) {
                size_t n = strlen(program);
                if (strncmp(line, program, n) == 0 && line[n] == ':' && line[n + 1] == ' ')
                        line += n + 2;
                if (strncmp(line, "Hint: ", 6) == 0)
                        json_array_append_new(hints, json_string(line + 6));
                else if (!message)
                        message = line;
                else
                        json_array_append_new(details, json_string(line));
        }
        const char *daemon_message = json_string_value(json_object_get(json_errors.daemon_error, "message"));
        o = json_pack("{s:s, s:i}", "message", message ?: daemon_message ?: "failed", "exit", status);
        if (o && json_errors.daemon_error) {
                json_object_set(o, "code", json_object_get(json_errors.daemon_error, "code"));
                if (json_object_get(json_errors.daemon_error, "data"))
                        json_object_set(o, "data", json_object_get(json_errors.daemon_error, "data"));
        }
        if (o && json_array_size(hints) > 0)
                json_object_set(o, "hints", hints);
        if (o && json_array_size(details) > 0)
                json_object_set(o, "details", details);
        json_decref(hints);
        json_decref(details);
        return o ? json_pack("{s:o}", "error", o) : NULL;
}

static int json_errors_end(Flashctl *ctx, int status)
{
        if (!json_errors.real_stderr)
                return status;
        fclose(stderr);
        stderr = json_errors.real_stderr;
        json_errors.real_stderr = NULL;
        if (status == FLASHCTL_EXIT_OK || json_errors.result_printed) {
                if (json_errors.size > 0)
                        fwrite(json_errors.text, 1, json_errors.size, stderr);
        } else {
                json_t *o = json_errors_object(status);
                if (!o || flashctl_print_json(ctx, o) < 0)
                        fputs(json_errors.text ?: "", stderr);
                json_decref(o);
        }
        free(json_errors.text);
        json_errors.text = NULL;
        json_decref(json_errors.daemon_error);
        json_errors.daemon_error = NULL;
        return status;
}

void flashctl_json_result_printed(void)
{
        json_errors.result_printed = true;
}

void flashctl_record_daemon_error(const RpcClientError *e)
{
        if (!json_errors.real_stderr)
                return;
        json_decref(json_errors.daemon_error);
        json_errors.daemon_error = json_pack("{s:I, s:s?, s:O?}", "code", (json_int_t)e->code, "message",
                                             e->message, "data", e->data);
}

static const Verb *verb_find(const char *name)
{
        for (const CommandGroup *const *g = command_groups; *g; g++)
                for (const Verb *v = (*g)->verbs; v->name; v++)
                        if (streq(v->name, name))
                                return v;
        return NULL;
}

static void help_main(FILE *f)
{
        fprintf(f,
                "%s [OPTIONS...] COMMAND [ARGS...]\n"
                "\n"
                "Control flashd, the firmware flashing daemon for 3D-printer boards.\n"
                "\n"
                "Commands:\n",
                program);
        for (const CommandGroup *const *g = command_groups; *g; g++)
                for (const Verb *v = (*g)->verbs; v->name; v++) {
                        char left[64];
                        snprintf(left, sizeof(left), "%s%s%s", v->name, v->args ? " " : "",
                                 v->args ? v->args : "");
                        fprintf(f, "  %-24s %s\n", left, v->summary);
                }
        fprintf(f,
                "  %-24s %s\n"
                "\n"
                "Options:\n"
                "  -h --help              Show this help, or a command's with COMMAND --help\n"
                "     --version           Show the version\n"
                "  -s --socket=PATH       The daemon's socket (default: $FLASHD_SOCKET, else\n"
                "                         %s)\n"
                "  -j --json              Print JSON as the daemon sends it\n"
                "  -t --timeout=SEC       How long to wait for each answer (default: %u)\n"
                "     --no-legend         Print tables without header and footer\n"
                "\n"
                "See flashctl(1) for exit codes and details.\n",
                "help [COMMAND]", "Show help for all or one command", FLASHD_DEFAULT_SOCKET,
                (unsigned)(RPC_CLIENT_TIMEOUT_DEFAULT / 1000000u));
}

void flashctl_verb_help(const Verb *v, FILE *f)
{
        fprintf(f, "%s [OPTIONS...] %s%s%s\n\n%s\n", program, v->name, v->args ? " " : "",
                v->args ? v->args : "", v->summary);
        if (v->help)
                fprintf(f, "\n%s", v->help);
        fputs("\nGlobal options (--socket, --json, --timeout, --no-legend) may also follow the command;\n"
              "see flashctl --help.\n",
              f);
}

int flashctl_usage_error(const char *verb, const char *fmt, ...)
{
        va_list ap;

        fprintf(stderr, "%s: ", program);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, "\nTry '%s %s%s--help' for more information.\n", program, verb ? verb : "",
                verb ? " " : "");
        return FLASHCTL_EXIT_USAGE;
}

static const char *socket_path(const Flashctl *ctx)
{
        const char *e;

        if (ctx->socket_path)
                return ctx->socket_path;
        e = getenv("FLASHD_SOCKET");
        if (e && e[0])
                return e;
        return FLASHD_DEFAULT_SOCKET;
}

int flashctl_report_error(Flashctl *ctx, int r, const char *what)
{
        switch (r) {
        case -ETIMEDOUT:
                fprintf(stderr, "%s: %s: flashd did not answer within %.3g s (see --timeout)\n", program,
                        what, (double)ctx->timeout_usec / 1e6);
                return FLASHCTL_EXIT_LOST;
        case -ECONNRESET:
                fprintf(stderr, "%s: %s: flashd closed the connection (did it stop or restart?)\n", program,
                        what);
                return FLASHCTL_EXIT_LOST;
        case -EBADMSG:
                fprintf(stderr, "%s: %s: flashd sent an answer that is not valid JSON-RPC 2.0\n", program,
                        what);
                return FLASHCTL_EXIT_LOST;
        default:
                fprintf(stderr, "%s: %s: %s\n", program, what, strerror(-r));
                return FLASHCTL_EXIT_LOST;
        }
}

/* The daemon's error message, and whatever of its data helps a person. */
void flashctl_print_daemon_error(const RpcClientError *e)
{
        flashctl_record_daemon_error(e);
        fprintf(stderr, "%s: %s\n", program, e->message);
        if (json_is_object(e->data)) {
                const json_t *candidates = json_object_get(e->data, "candidates");
                const char *hint = json_string_value(json_object_get(e->data, "hint"));
                if (json_is_array(candidates) && json_array_size(candidates) > 0) {
                        size_t i;
                        const json_t *c;
                        fputs("Candidates:\n", stderr);
                        json_array_foreach (candidates, i, c) {
                                if (json_is_string(c))
                                        fprintf(stderr, "  %s\n", json_string_value(c));
                                else if (json_is_object(c)) {
                                        const char *id = json_string_value(json_object_get(c, "id"));
                                        const char *board = json_string_value(json_object_get(c, "board"));
                                        fprintf(stderr, "  %s%s%s\n", strna(id), board ? "  " : "",
                                                strempty(board));
                                }
                        }
                }
                if (hint)
                        fprintf(stderr, "Hint: %s\n", hint);
        } else if (json_is_string(e->data))
                fprintf(stderr, "%s\n", json_string_value(e->data));
}

int flashctl_connect(Flashctl *ctx)
{
        const char *path = socket_path(ctx);
        int r;

        if (ctx->client)
                return 0;

        r = rpc_client_connect(&ctx->client, path, ctx->timeout_usec);
        if (r < 0) {
                fprintf(stderr, "%s: cannot connect to %s: %s", program, path, strerror(-r));
                if (r == -EACCES)
                        fputs(" — is your user in the flashd group?\n", stderr);
                else if (r == -ENOENT || r == -ECONNREFUSED)
                        fputs(" — is flashd running? (systemctl start flashd.socket)\n", stderr);
                else
                        fputc('\n', stderr);
                return FLASHCTL_EXIT_CONNECT;
        }
        rpc_client_set_timeout(ctx->client, ctx->timeout_usec);

        RpcClientError e = {};
        json_auto_t *params = json_pack("{s:s, s:s, s:s}", "client_name", "flashctl", "version",
                                        FLASHD_VERSION, "type", "other");
        json_auto_t *result = NULL;
        if (!params)
                return flashctl_report_error(ctx, -ENOMEM, "identify");
        r = rpc_client_call(ctx->client, "server.connection.identify", params, 0, &result, &e);
        if (r == -EREMOTEIO) {
                flashctl_print_daemon_error(&e);
                rpc_client_error_done(&e);
                return FLASHCTL_EXIT_DAEMON_ERROR;
        }
        if (r < 0)
                return flashctl_report_error(ctx, r, "server.connection.identify");
        return 0;
}

int flashctl_call_full(Flashctl *ctx, const char *method, json_t *params, int fd, uint64_t timeout_usec,
                       json_t **ret_result, RpcClientError *ret_error)
{
        RpcClientError e = {};
        int r;

        r = flashctl_connect(ctx);
        if (r > 0)
                return r;

        if (fd >= 0)
                r = rpc_client_call_with_fd(ctx->client, method, params, fd, timeout_usec, ret_result, &e);
        else
                r = rpc_client_call(ctx->client, method, params, timeout_usec, ret_result, &e);
        if (r == -EREMOTEIO) {
                if (ret_error)
                        *ret_error = e;
                else {
                        flashctl_print_daemon_error(&e);
                        rpc_client_error_done(&e);
                }
                return FLASHCTL_EXIT_DAEMON_ERROR;
        }
        if (r < 0)
                return flashctl_report_error(ctx, r, method);
        return 0;
}

int flashctl_call(Flashctl *ctx, const char *method, json_t *params, json_t **ret_result,
                  RpcClientError *ret_error)
{
        return flashctl_call_full(ctx, method, params, -EBADF, 0, ret_result, ret_error);
}

int flashctl_print_json(Flashctl *ctx, const json_t *v)
{
        size_t flags = JSON_ENCODE_ANY | JSON_PRESERVE_ORDER;

        /* Readable on a terminal, one line in a pipe (like systemd's --json=auto). */
        flags |= isatty(STDOUT_FILENO) == 1 ? JSON_INDENT(2) : JSON_COMPACT;
        if (json_dumpf(v, stdout, flags) < 0)
                return -EIO;
        fputc('\n', stdout);
        (void)ctx;
        return 0;
}

int flashctl_parse_u32(const char *s, uint32_t *ret)
{
        char *end = NULL;
        unsigned long long v;

        errno = 0;
        v = strtoull(s, &end, 0);
        if (errno != 0 || !end || end == s || *end != '\0' || v > UINT32_MAX)
                return -EINVAL;
        *ret = (uint32_t)v;
        return 0;
}

int flashctl_print_json_exit(Flashctl *ctx, const json_t *v)
{
        return flashctl_print_json(ctx, v) < 0 ? FLASHCTL_EXIT_DAEMON_ERROR : FLASHCTL_EXIT_OK;
}

int flashctl_call_list(Flashctl *ctx, const char *method, json_t *params, const char *key,
                       json_t **ret_result, const json_t **ret_array)
{
        json_t *result = NULL;
        int r;

        r = flashctl_call(ctx, method, params, &result, NULL);
        if (r != 0)
                return r;
        const json_t *array = json_object_get(result, key);
        if (ctx->json) {
                r = flashctl_print_json_exit(ctx, array);
                json_decref(result);
                return r;
        }
        if (!json_is_array(array)) {
                json_decref(result);
                return flashctl_report_error(ctx, -EBADMSG, method);
        }
        *ret_result = result;
        *ret_array = array;
        return FLASHCTL_LIST_TABLE;
}

const char *flashctl_time_now(char buf[static 32], bool iso)
{
        struct timeval tv;
        struct tm tm;

        gettimeofday(&tv, NULL);
        if (iso) {
                gmtime_r(&tv.tv_sec, &tm);
                size_t n = strftime(buf, 32, "%Y-%m-%dT%H:%M:%S", &tm);
                snprintf(buf + n, 32 - n, ".%03ldZ", (long)(tv.tv_usec / 1000));
        } else {
                localtime_r(&tv.tv_sec, &tm);
                size_t n = strftime(buf, 32, "%H:%M:%S", &tm);
                snprintf(buf + n, 32 - n, ".%03ld", (long)(tv.tv_usec / 1000));
        }
        return buf;
}

static int parse_timeout(const char *s, uint64_t *ret)
{
        char *end;
        errno = 0;
        double d = strtod(s, &end);
        if (errno != 0 || end == s || *end != '\0' || !(d > 0) || d > 86400.0 * 365)
                return -EINVAL;
        *ret = (uint64_t)(d * 1e6);
        if (*ret == 0)
                *ret = 1;
        return 0;
}

enum {
        ARG_VERSION = 0x100,
        ARG_NO_LEGEND,
};

static const struct option global_options[] = {
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, ARG_VERSION },
        { "socket", required_argument, NULL, 's' },
        { "json", no_argument, NULL, 'j' },
        { "timeout", required_argument, NULL, 't' },
        { "no-legend", no_argument, NULL, ARG_NO_LEGEND },
        {},
};

/* Apply one global option; returns 0, or an exit status (> 0, or -1 for "exit 0"). */
static int apply_global(Flashctl *ctx, int c, const char *arg, const char *verb)
{
        switch (c) {
        case 's':
                if (!arg[0])
                        return flashctl_usage_error(verb, "--socket needs a path");
                ctx->socket_path = arg;
                return 0;
        case 'j':
                ctx->json = true;
                return 0;
        case 't':
                if (parse_timeout(arg, &ctx->timeout_usec) < 0)
                        return flashctl_usage_error(verb, "invalid --timeout '%s': expected seconds > 0",
                                                    arg);
                return 0;
        case ARG_NO_LEGEND:
                ctx->legend = false;
                return 0;
        }
        return flashctl_usage_error(verb, "unexpected option");
}

/*
 * Global options may follow the command too (`flashctl list --json`), as in
 * systemctl. Take them out of the verb's argv before the verb sees it; stop
 * at "--". Returns 0 or an exit status.
 */
static int extract_global_options(Flashctl *ctx, int *argc, char **argv, bool *ret_help)
{
        int out = 1;
        bool help = false, end = false;

        for (int i = 1; i < *argc; i++) {
                char *a = argv[i];
                const struct option *match = NULL;
                const char *value = NULL;

                if (end || a[0] != '-' || streq(a, "-")) {
                        argv[out++] = a;
                        continue;
                }
                if (streq(a, "--")) {
                        end = true;
                        argv[out++] = a;
                        continue;
                }
                if (streq(a, "-h") || streq(a, "--help")) {
                        help = true;
                        continue;
                }
                if (a[1] == '-') {
                        const char *eq = strchr(a + 2, '=');
                        size_t n = eq ? (size_t)(eq - (a + 2)) : strlen(a + 2);
                        for (const struct option *o = global_options; o->name; o++)
                                if (strlen(o->name) == n && strncmp(o->name, a + 2, n) == 0)
                                        match = o;
                        if (match && eq)
                                value = eq + 1;
                } else if (a[2] == '\0' || a[1] == 's' || a[1] == 't') {
                        for (const struct option *o = global_options; o->name; o++)
                                if (o->val == a[1])
                                        match = o;
                        if (match && a[2] != '\0')
                                value = a + 2;
                }
                if (!match || match->val == 'h' || match->val == ARG_VERSION) {
                        argv[out++] = a;
                        continue;
                }
                if (match->has_arg == required_argument && !value) {
                        if (i + 1 >= *argc)
                                return flashctl_usage_error(argv[0], "option '%s' needs an argument", a);
                        value = argv[++i];
                } else if (match->has_arg == no_argument && value)
                        return flashctl_usage_error(argv[0], "option '--%s' takes no argument", match->name);
                int r = apply_global(ctx, match->val, value, argv[0]);
                if (r != 0)
                        return r;
        }
        argv[out] = NULL;
        *argc = out;
        *ret_help = help;
        return 0;
}

static int run_verb(Flashctl *ctx, int argc, char **argv)
{
        const Verb *v = verb_find(argv[0]);
        bool help = false;
        int r;

        if (!v)
                return flashctl_usage_error(NULL, "unknown command '%s'", argv[0]);

        r = extract_global_options(ctx, &argc, argv, &help);
        if (r != 0)
                return r;
        if (help) {
                flashctl_verb_help(v, stdout);
                return FLASHCTL_EXIT_OK;
        }
        ctx->use_color = !ctx->json && output_use_color(stdout);

        /* Verbs parse their own options with getopt_long(); start it afresh. */
        optind = 0;
        opterr = 1;
        if (ctx->json)
                json_errors_begin();
        r = v->run(ctx, argc, argv);
        /* before the connection goes: a daemon error's data is still held */
        return json_errors_end(ctx, r);
}

static int verb_help(Flashctl *ctx, int argc, char **argv)
{
        if (argc < 2) {
                help_main(stdout);
                return FLASHCTL_EXIT_OK;
        }
        const Verb *v = verb_find(argv[1]);
        if (!v) {
                if (streq(argv[1], "help")) {
                        help_main(stdout);
                        return FLASHCTL_EXIT_OK;
                }
                return flashctl_usage_error(NULL, "unknown command '%s'", argv[1]);
        }
        flashctl_verb_help(v, stdout);
        (void)ctx;
        return FLASHCTL_EXIT_OK;
}

int main(int argc, char **argv)
{
        Flashctl ctx = {
                .legend = true,
                .timeout_usec = RPC_CLIENT_TIMEOUT_DEFAULT,
        };
        int c, r;

        /* '+': stop at the command; its own options are the verb's. */
        while ((c = getopt_long(argc, argv, "+hs:jt:", global_options, NULL)) >= 0) {
                switch (c) {
                case 'h':
                        help_main(stdout);
                        return FLASHCTL_EXIT_OK;
                case ARG_VERSION:
                        printf("flashctl %s\n", FLASHD_VERSION);
                        return FLASHCTL_EXIT_OK;
                case '?':
                        fprintf(stderr, "Try '%s --help' for more information.\n", program);
                        return FLASHCTL_EXIT_USAGE;
                default:
                        r = apply_global(&ctx, c, optarg, NULL);
                        if (r != 0)
                                return r;
                }
        }

        if (optind >= argc) {
                help_main(stderr);
                return FLASHCTL_EXIT_USAGE;
        }

        argc -= optind;
        argv += optind;
        if (streq(argv[0], "help"))
                r = verb_help(&ctx, argc, argv);
        else
                r = run_verb(&ctx, argc, argv);

        rpc_client_free(ctx.client);
        if (fflush(stdout) != 0 && r == 0)
                r = FLASHCTL_EXIT_DAEMON_ERROR;
        return r;
}
