/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What command groups share with flashctl.c.
 *
 * Adding a command group (iwd's client/ layout: one file per group):
 *   1. Write client/cmd-foo.c with its verbs and, if it has live events,
 *      its notification printers, and end it with
 *        const CommandGroup command_group_foo = { .name = "foo", .verbs = foo_verbs,
 *                                                 .events = foo_events };
 *   2. Declare it below (`extern const CommandGroup command_group_foo;`).
 *   3. Add one line `&command_group_foo,` to command_groups[] in flashctl.c
 *      and the file to client/meson.build.
 * The verbs then appear in `flashctl --help`, get `flashctl help VERB` and
 * `flashctl VERB --help`, and the events appear in `flashctl watch`.
 */

#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "rpc-client.h"

/* Exit status of flashctl (documented in flashctl.1). */
enum {
        FLASHCTL_EXIT_OK = 0,
        FLASHCTL_EXIT_DAEMON_ERROR = 1, /* the daemon answered with an error, or nothing matched */
        FLASHCTL_EXIT_USAGE = 2,        /* bad command line */
        FLASHCTL_EXIT_CONNECT = 3,      /* cannot connect to the socket */
        FLASHCTL_EXIT_LOST = 4,         /* no answer in time, connection lost, or a malformed answer */
        /* 5 and up: reserved for `flash` (see flashctl.1) */
};

typedef struct Flashctl {
        const char *socket_path;
        bool json;
        bool legend;
        uint64_t timeout_usec;
        bool use_color;
        RpcClient *client; /* connected lazily by flashctl_connect() */
} Flashctl;

typedef struct Verb {
        const char *name;
        const char *args;    /* "DEVICE|BOARD", shown in help; NULL for none */
        const char *summary; /* one line for `flashctl --help` */
        const char *help;    /* the rest of `flashctl VERB --help`: options, details; may be NULL */
        /* Verb-specific options (NULL-terminated by a zeroed entry, may be NULL) */
        const struct option *options;
        /* argv[0] is the verb; getopt state is reset before the call, and
         * the verb parses its own options with getopt_long(). Returns an
         * exit status. */
        int (*run)(Flashctl *ctx, int argc, char **argv);
} Verb;

/* How `flashctl watch` prints one notification of a group. */
typedef struct EventPrinter {
        const char *method; /* "notify_device_added" */
        /* One human-readable line (without time stamp) for params; return
         * a malloc'd string, or NULL to show nothing. */
        char *(*format)(const char *method, json_t *params, bool use_color);
} EventPrinter;

typedef struct CommandGroup {
        const char *name;
        const Verb *verbs;          /* terminated by { NULL } */
        const EventPrinter *events; /* terminated by { NULL }; may be NULL */
} CommandGroup;

extern const CommandGroup command_group_server;
extern const CommandGroup command_group_device;
extern const CommandGroup command_group_watch;
extern const CommandGroup command_group_job;
extern const CommandGroup command_group_rule;
extern const CommandGroup command_group_profile;
extern const CommandGroup command_group_update;

/* update.status for `flashctl status` (cmd-update.c): 0 with *ret, 1 when
 * the daemon has no such method, else an exit status (error printed). */
int flashctl_update_status_fetch(Flashctl *ctx, json_t **ret);
void flashctl_update_status_print(Flashctl *ctx, const json_t *status);

/* All groups, NULL-terminated (flashctl.c). */
extern const CommandGroup *const command_groups[];

/* Connect and identify once; on failure prints why and returns an exit status > 0. */
int flashctl_connect(Flashctl *ctx);

/*
 * Call a method; on failure prints the error (the daemon's message, or what
 * went wrong with the connection) and returns an exit status > 0.
 * ret_error, when given, receives the daemon's error instead of printing it
 * (the return value is then FLASHCTL_EXIT_DAEMON_ERROR).
 */
int flashctl_call(Flashctl *ctx, const char *method, json_t *params, json_t **ret_result,
                  RpcClientError *ret_error);

/*
 * flashctl_call() with a file descriptor passed alongside the request
 * (SCM_RIGHTS, see rpc_client_call_with_fd(); -1 for none) and its own
 * timeout (0: --timeout), for calls such as job.flash that send an image
 * or answer late.
 */
int flashctl_call_full(Flashctl *ctx, const char *method, json_t *params, int fd, uint64_t timeout_usec,
                       json_t **ret_result, RpcClientError *ret_error);

/* The daemon's error message, and candidates or hint from its data, on stderr. */
void flashctl_print_daemon_error(const RpcClientError *e);

/* Keep the daemon's error (code, message, data) for the --json error object
 * without printing it (flashctl_print_daemon_error() does this too). */
void flashctl_record_daemon_error(const RpcClientError *e);
/* With --json: the verb printed one JSON result that reports its failure
 * itself (update's report), so no error object follows it on stdout. */
void flashctl_json_result_printed(void);

/* The exit status for a transport error of the client, after printing it. */
int flashctl_report_error(Flashctl *ctx, int r, const char *what);

/* An address or count given on the command line (decimal, 0x hex, 0 octal). */
int flashctl_parse_u32(const char *s, uint32_t *ret);

/* Print a JSON value as the daemon sent it (indented on a tty), newline-terminated. */
int flashctl_print_json(Flashctl *ctx, const json_t *v);
/* The same, for a command that ends with it: returns the exit status. */
int flashctl_print_json_exit(Flashctl *ctx, const json_t *v);

/*
 * The list commands (`jobs`, `rule list`): call METHOD and take the array
 * under KEY of its result. Returns FLASHCTL_LIST_TABLE with *ret_array
 * (owned by *ret_result) when the caller should print its table, or the
 * exit status when the command is done: an error was reported, or --json
 * printed the array as the daemon sent it.
 */
#define FLASHCTL_LIST_TABLE (-1)
int flashctl_call_list(Flashctl *ctx, const char *method, json_t *params, const char *key,
                       json_t **ret_result, const json_t **ret_array);

/* Handle -h/--help for a verb: call from the verb's getopt loop. */
void flashctl_verb_help(const Verb *v, FILE *f);

/* Used by verbs' getopt loops for unknown options (prints a hint, returns 2). */
int flashctl_usage_error(const char *verb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* "12:03:04.123" local time, for watch lines. */
const char *flashctl_time_now(char buf[static 32], bool iso);
