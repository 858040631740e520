/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * flashctl rule add|list|remove|enable|disable: automatic flashing on
 * hotplug (proto/API.md, "Rules"), and how `flashctl watch` shows rule
 * events.
 *
 * `rule add --image FILE` passes the file by descriptor, as `flash` does;
 * the daemon keeps its own copy (by SHA-256), so the file may go away.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "flashctl.h"
#include "util/macros.h"
#include "output.h"

static long long int_field(const json_t *o, const char *key)
{
        json_t *v = json_object_get(o, key);
        return json_is_integer(v) ? (long long)json_integer_value(v) : 0;
}

/* "octopus-pro, bootloader, port 1-1.*" */
static char *match_summary(const json_t *match)
{
        static const struct {
                const char *key, *label;
        } keys[] = {
                { "board", "" },      { "mcu", "" }, { "port", "port " }, { "usb_serial", "serial " },
                { "usb_id", "usb " },
        };
        char *s = NULL;
        size_t n = 0;
        FILE *f = open_memstream(&s, &n);

        if (!f)
                return NULL;
        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                if (output_json_str(match, keys[i].key))
                        fprintf(f, "%s%s, ", keys[i].label, output_json_str(match, keys[i].key));
        fprintf(f, "%s", strna(output_json_str(match, "mode")));
        fclose(f);
        return s;
}

/* What the rule did last, for the table: the newest of fired, skipped, error. */
static char *last_summary(const json_t *rule)
{
        static const char *const kinds[] = { "last_fired", "last_skipped", "last_error" };
        static const char *const words[] = { "fired", "skipped", "error" };
        const json_t *newest = NULL;
        size_t which = 0;
        char *s = NULL, job[32] = "";

        for (size_t i = 0; i < ELEMENTSOF(kinds); i++) {
                const json_t *e = json_object_get(rule, kinds[i]);
                if (!json_is_object(e))
                        continue;
                if (!newest || json_number_value(json_object_get(e, "time")) >=
                                       json_number_value(json_object_get(newest, "time"))) {
                        newest = e;
                        which = i;
                }
        }
        if (!newest)
                return strdup("-");
        if (int_field(newest, "job") > 0)
                snprintf(job, sizeof(job), " job %lld", int_field(newest, "job"));
        if (asprintf(&s, "%s %s%s%s%s", words[which], strna(output_json_str(newest, "port")), job,
                     output_json_str(newest, "message") ? ": " : "",
                     strempty(output_json_str(newest, "message"))) < 0)
                return NULL;
        return s;
}

/* "rule-1" or "rule-1 (bench)": the id a command takes, and the name a person gave. */
static void print_rule_id(const json_t *rule)
{
        fputs(strna(output_json_str(rule, "id")), stdout);
        if (output_json_str(rule, "name")) {
                fputs(" (", stdout);
                output_fputs_sanitized(output_json_str(rule, "name"), stdout);
                fputc(')', stdout);
        }
}

/* What an added or enabled rule did at once to the boards already present
 * (the daemon looks at them before it answers): a rule that starts
 * flashing a connected board must say so. */
static void print_rule_effect(const json_t *rule, double since)
{
        const json_t *pending = json_object_get(rule, "pending"), *p;
        const json_t *skipped = json_object_get(rule, "last_skipped");
        bool any = false;
        size_t i;

        if (!json_is_true(json_object_get(rule, "enabled"))) {
                printf("It is disabled: nothing is flashed until `flashctl rule enable %s`, which flashes "
                       "matching boards already present at once.\n",
                       strna(output_json_str(rule, "id")));
                return;
        }
        json_array_foreach (pending, i, p) {
                long long job = int_field(p, "job");
                printf("Board already present: %s matches; ", strna(output_json_str(p, "port")));
                if (job > 0)
                        printf("flashing it now as job %lld (flashctl job %lld --follow).\n", job, job);
                else
                        printf("%s.\n", strna(output_json_str(p, "state")));
                any = true;
        }
        if (json_is_object(skipped) && json_number_value(json_object_get(skipped, "time")) >= since) {
                printf("Board already present: %s matches; skipped: ",
                       strna(output_json_str(skipped, "port")));
                output_fputs_sanitized(strna(output_json_str(skipped, "message")), stdout);
                fputs(".\n", stdout);
                any = true;
        }
        if (!any)
                printf("No board present now is flashed by it; matching boards are flashed as they show "
                       "up.\n");
}

/* Now, as the daemon stamps rule events (the same clock, seconds since the
 * epoch): a skip stamped after a request was sent is that request's doing. */
static double now_epoch(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int print_rule_line(Flashctl *ctx, const char *verb, const json_t *rule, double since)
{
        if (ctx->json)
                return flashctl_print_json_exit(ctx, rule);
        fputs("Rule ", stdout);
        print_rule_id(rule);
        printf(" %s.\n", verb);
        if (streq(verb, "enabled"))
                print_rule_effect(rule, since);
        return FLASHCTL_EXIT_OK;
}

/* ---- add ---- */

static int rule_add(Flashctl *ctx, int argc, char **argv)
{
        enum {
                ARG_BOARD = 0x100,
                ARG_MCU,
                ARG_PORT,
                ARG_MODE,
                ARG_SERIAL,
                ARG_USB_ID,
                ARG_IMAGE,
                ARG_NO_VERIFY,
                ARG_MASS_ERASE,
                ARG_FORMAT,
                ARG_ONCE,
                ARG_ALWAYS,
                ARG_MAX_RETRIES,
                ARG_RETRY_DELAY,
                ARG_NAME,
                ARG_DISABLED,
        };
        static const struct option options[] = {
                { "board", required_argument, NULL, ARG_BOARD },
                { "mcu", required_argument, NULL, ARG_MCU },
                { "port", required_argument, NULL, ARG_PORT },
                { "mode", required_argument, NULL, ARG_MODE },
                { "serial", required_argument, NULL, ARG_SERIAL },
                { "usb-id", required_argument, NULL, ARG_USB_ID },
                { "image", required_argument, NULL, ARG_IMAGE },
                { "address", required_argument, NULL, 'a' },
                { "no-verify", no_argument, NULL, ARG_NO_VERIFY },
                { "force", required_argument, NULL, 'f' },
                { "mass-erase", no_argument, NULL, ARG_MASS_ERASE },
                { "format", required_argument, NULL, ARG_FORMAT },
                { "once", no_argument, NULL, ARG_ONCE },
                { "always", no_argument, NULL, ARG_ALWAYS },
                { "max-retries", required_argument, NULL, ARG_MAX_RETRIES },
                { "retry-delay", required_argument, NULL, ARG_RETRY_DELAY },
                { "name", required_argument, NULL, ARG_NAME },
                { "disabled", no_argument, NULL, ARG_DISABLED },
                {},
        };
        json_auto_t *match = json_object(), *params = json_object(), *force = json_array();
        json_auto_t *result = NULL;
        const char *image = NULL;
        _cleanup_close_ int fd = -EBADF;
        uint32_t u;
        int c, r;

        if (!match || !params || !force)
                return flashctl_report_error(ctx, -ENOMEM, "rule add");
        while ((c = getopt_long(argc, argv, "a:f:", options, NULL)) >= 0)
                switch (c) {
                case ARG_BOARD:
                        json_object_set_new(match, "board", json_string(optarg));
                        break;
                case ARG_MCU:
                        json_object_set_new(match, "mcu", json_string(optarg));
                        break;
                case ARG_PORT:
                        json_object_set_new(match, "port", json_string(optarg));
                        break;
                case ARG_MODE:
                        /* the device modes flashctl list prints are accepted too */
                        if (streq(optarg, "dfu") || streq(optarg, "katapult"))
                                optarg = (char *)"bootloader";
                        else if (streq(optarg, "app"))
                                optarg = (char *)"application";
                        json_object_set_new(match, "mode", json_string(optarg));
                        break;
                case ARG_SERIAL:
                        json_object_set_new(match, "usb_serial", json_string(optarg));
                        break;
                case ARG_USB_ID:
                        json_object_set_new(match, "usb_id", json_string(optarg));
                        break;
                case ARG_IMAGE:
                        image = optarg;
                        break;
                case 'a':
                        if (flashctl_parse_u32(optarg, &u) < 0)
                                return flashctl_usage_error("rule", "bad address '%s' (e.g. 0x08008000)",
                                                            optarg);
                        json_object_set_new(params, "address", json_integer(u));
                        break;
                case ARG_NO_VERIFY:
                        json_object_set_new(params, "verify", json_false());
                        break;
                case 'f':
                        json_array_append_new(force, json_string(optarg));
                        break;
                case ARG_MASS_ERASE:
                        json_object_set_new(params, "mass_erase", json_true());
                        break;
                case ARG_FORMAT:
                        json_object_set_new(params, "format", json_string(optarg));
                        break;
                case ARG_ONCE:
                        json_object_set_new(params, "repeat", json_string("once"));
                        break;
                case ARG_ALWAYS:
                        json_object_set_new(params, "repeat", json_string("always"));
                        break;
                case ARG_MAX_RETRIES:
                        if (flashctl_parse_u32(optarg, &u) < 0)
                                return flashctl_usage_error("rule", "bad --max-retries '%s'", optarg);
                        json_object_set_new(params, "max_retries", json_integer(u));
                        break;
                case ARG_RETRY_DELAY: {
                        char *end = NULL;
                        double d;
                        errno = 0;
                        d = strtod(optarg, &end);
                        if (errno != 0 || !end || end == optarg || *end != '\0' || !(d >= 0))
                                return flashctl_usage_error("rule", "bad --retry-delay '%s' (seconds)",
                                                            optarg);
                        json_object_set_new(params, "retry_delay_sec", json_real(d));
                        break;
                }
                case ARG_NAME:
                        json_object_set_new(params, "name", json_string(optarg));
                        break;
                case ARG_DISABLED:
                        json_object_set_new(params, "enabled", json_false());
                        break;
                default:
                        return FLASHCTL_EXIT_USAGE;
                }
        if (optind < argc)
                return flashctl_usage_error("rule", "'rule add' takes options only, not '%s'", argv[optind]);
        if (!image)
                return flashctl_usage_error("rule", "'rule add' needs --image FILE");
        if (json_object_size(match) == 0 || (json_object_size(match) == 1 && json_object_get(match, "mode")))
                return flashctl_usage_error(
                        "rule",
                        "'rule add' needs at least one of --board, --mcu, --port, --serial, --usb-id");

        fd = open(image, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                fprintf(stderr, "flashctl: cannot open %s: %s\n", image, strerror(errno));
                return FLASHCTL_EXIT_USAGE;
        }
        _cleanup_free_ char *copy = strdup(image);
        json_object_set_new(params, "match", TAKE_PTR(match));
        json_object_set_new(params, "image",
                            json_pack("{s:b, s:s}", "fd", true, "name", copy ? basename(copy) : image));
        if (json_array_size(force) > 0)
                json_object_set_new(params, "force", TAKE_PTR(force));

        double since = now_epoch();
        r = flashctl_call_full(ctx, "rule.add", params, fd, 0, &result, NULL);
        if (r != 0)
                return r;
        const json_t *rule = json_object_get(result, "rule");
        if (ctx->json)
                return flashctl_print_json_exit(ctx, rule);
        _cleanup_free_ char *what = match_summary(json_object_get(rule, "match"));
        const json_t *img = json_object_get(rule, "image");
        fputs("Rule ", stdout);
        print_rule_id(rule);
        printf(" added: flash %s (sha256 %.12s) onto %s boards (%s%s).\n",
               strna(output_json_str(img, "name")), strna(output_json_str(img, "sha256")), strna(what),
               strna(output_json_str(rule, "repeat")),
               json_is_false(json_object_get(rule, "enabled")) ? ", disabled" : "");
        print_rule_effect(rule, since);
        return FLASHCTL_EXIT_OK;
}

/* ---- list ---- */

static int rule_list(Flashctl *ctx, int argc, char **argv)
{
        static const struct option options[] = { {} };
        static const char *const headers[] = { "ID",    "NAME",    "ENABLED", "MATCH",   "IMAGE", "REPEAT",
                                               "FIRED", "FLASHED", "FAILED",  "SKIPPED", "LAST" };
        json_auto_t *result = NULL;
        Table *t = NULL;
        int c, r;

        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                return FLASHCTL_EXIT_USAGE;
        if (optind < argc)
                return flashctl_usage_error("rule", "'rule list' takes no arguments");
        const json_t *rules = NULL;
        r = flashctl_call_list(ctx, "rule.list", NULL, "rules", &result, &rules);
        if (r != FLASHCTL_LIST_TABLE)
                return r;

        r = table_new(&t, ELEMENTSOF(headers), headers);
        if (r < 0)
                return flashctl_report_error(ctx, r, "rule list");
        size_t i;
        json_t *rule;
        json_array_foreach (rules, i, rule) {
                char image[96], fired[16], flashed[16], failed[16], skipped[16];
                const json_t *img = json_object_get(rule, "image");
                bool enabled = json_is_true(json_object_get(rule, "enabled"));
                _cleanup_free_ char *what = match_summary(json_object_get(rule, "match"));
                _cleanup_free_ char *last = last_summary(rule);

                snprintf(image, sizeof(image), "%.12s%s%s", strempty(output_json_str(img, "sha256")),
                         output_json_str(img, "name") ? " " : "", strempty(output_json_str(img, "name")));
                snprintf(fired, sizeof(fired), "%lld", int_field(rule, "fired"));
                snprintf(flashed, sizeof(flashed), "%lld", int_field(rule, "flashed"));
                snprintf(failed, sizeof(failed), "%lld", int_field(rule, "failed"));
                snprintf(skipped, sizeof(skipped), "%lld", int_field(rule, "skipped"));
                const char *cells[] = { output_json_str(rule, "id"),
                                        output_json_str(rule, "name"),
                                        enabled ? "yes" : "no",
                                        what,
                                        image,
                                        output_json_str(rule, "repeat"),
                                        fired,
                                        flashed,
                                        failed,
                                        skipped,
                                        last };
                r = table_add_row(t, cells);
                if (r < 0)
                        break;
                table_set_last_row_color(t, 2, enabled ? OUTPUT_COLOR_GREEN : OUTPUT_COLOR_GREY);
        }
        if (r >= 0)
                r = table_print(t, stdout, output_terminal_width(stdout), ctx->use_color, ctx->legend);
        table_free(t);
        if (r < 0)
                return flashctl_report_error(ctx, r, "rule list");
        if (ctx->legend && json_array_size(rules) == 0)
                printf("No rules. (flashctl rule add --board NAME --image FILE)\n");
        /* what a rule is busy with, and why it disabled itself */
        json_array_foreach (rules, i, rule) {
                size_t k;
                json_t *p;
                if (output_json_str(rule, "disabled_reason"))
                        printf("%s: %s\n", output_json_str(rule, "id"),
                               output_json_str(rule, "disabled_reason"));
                json_array_foreach (json_object_get(rule, "pending"), k, p) {
                        printf("%s: %s %s, attempt %lld", output_json_str(rule, "id"),
                               strna(output_json_str(p, "port")), strna(output_json_str(p, "state")),
                               int_field(p, "attempt"));
                        if (int_field(p, "job") > 0)
                                printf(", job %lld", int_field(p, "job"));
                        putchar('\n');
                }
        }
        return FLASHCTL_EXIT_OK;
}

/* ---- remove, enable, disable ---- */

static int rule_by_id(Flashctl *ctx, int argc, char **argv, const char *method, const char *done)
{
        static const struct option options[] = { {} };
        json_auto_t *params = NULL, *result = NULL;
        int c, r;

        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                return FLASHCTL_EXIT_USAGE;
        if (argc - optind != 1)
                return flashctl_usage_error(
                        "rule", "'rule %s' needs exactly one rule ID (see flashctl rule list)", argv[0]);
        /* `rule list` shows rule-3; 3 means the same rule */
        const char *id = argv[optind];
        _cleanup_free_ char *full = NULL;
        if (id[0] && strspn(id, "0123456789") == strlen(id)) {
                if (asprintf(&full, "rule-%s", id) < 0)
                        return flashctl_report_error(ctx, -ENOMEM, "rule");
                id = full;
        }
        params = json_pack("{s:s}", "rule", id);
        double since = now_epoch();
        r = flashctl_call(ctx, method, params, &result, NULL);
        if (r != 0)
                return r;
        return print_rule_line(ctx, done, json_object_get(result, "rule"), since);
}

static int verb_rule(Flashctl *ctx, int argc, char **argv)
{
        if (argc < 2)
                return flashctl_usage_error("rule",
                                            "'rule' needs a subcommand: add, list, remove, enable, disable");
        /* the subcommand is argv[0] of its own option parsing */
        argc--;
        argv++;
        if (streq(argv[0], "add"))
                return rule_add(ctx, argc, argv);
        if (streq(argv[0], "list"))
                return rule_list(ctx, argc, argv);
        if (streq(argv[0], "remove"))
                return rule_by_id(ctx, argc, argv, "rule.remove", "removed");
        if (streq(argv[0], "enable"))
                return rule_by_id(ctx, argc, argv, "rule.enable", "enabled");
        if (streq(argv[0], "disable"))
                return rule_by_id(ctx, argc, argv, "rule.disable", "disabled");
        return flashctl_usage_error("rule", "unknown subcommand '%s': add, list, remove, enable, disable",
                                    argv[0]);
}

/* ---- watch ---- */

/* "rule rule-1 fired    1-1.3 job 7 (octopus-pro, dfu)" */
static char *format_rule_event(const char *method, json_t *params, bool use_color)
{
        const json_t *e = json_array_get(params, 0);
        char *s = NULL;
        int k = -1;

        if (streq(method, "notify_rule_fired"))
                k = asprintf(&s, "rule %-8s %sfired%s   %s job %lld (%s, %s)%s",
                             strna(output_json_str(e, "rule")),
                             output_color_on(OUTPUT_COLOR_YELLOW, use_color), output_color_off(use_color),
                             strna(output_json_str(e, "port")), int_field(e, "job"),
                             output_json_str(e, "board") ? output_json_str(e, "board") : "board",
                             strna(output_json_str(e, "mode")), int_field(e, "attempt") > 1 ? " retry" : "");
        else if (streq(method, "notify_rule_skipped"))
                k = asprintf(&s, "rule %-8s skipped %s: %s", strna(output_json_str(e, "rule")),
                             strna(output_json_str(e, "port")), strna(output_json_str(e, "reason")));
        else if (streq(method, "notify_rule_removed"))
                k = asprintf(&s, "rule %-8s removed", strna(output_json_str(e, "id")));
        else if (streq(method, "notify_rule_changed"))
                k = asprintf(&s, "rule %-8s %s fired %lld flashed %lld failed %lld skipped %lld",
                             strna(output_json_str(e, "id")),
                             json_is_true(json_object_get(e, "enabled")) ? "enabled " : "disabled",
                             int_field(e, "fired"), int_field(e, "flashed"), int_field(e, "failed"),
                             int_field(e, "skipped"));
        return k < 0 ? NULL : s;
}

static const EventPrinter rule_events[] = {
        { "notify_rule_fired", format_rule_event },
        { "notify_rule_skipped", format_rule_event },
        { "notify_rule_changed", format_rule_event },
        { "notify_rule_removed", format_rule_event },
        {},
};

static const Verb rule_verbs[] = {
        {
                .name = "rule",
                .args = "add|list|remove|enable|disable ...",
                .summary = "Flash boards automatically as they show up",
                .help = "  rule add --image FILE MATCH... [OPTIONS...]\n"
                        "  rule list\n"
                        "  rule remove|enable|disable ID   (rule-3, or just 3)\n"
                        "\n"
                        "A rule flashes IMAGE onto every board that matches when it shows up (a bench:\n"
                        "plug boards in one after another). A board that already holds the image is\n"
                        "skipped, a failed flash is retried, and every flash is an ordinary job\n"
                        "(flashctl jobs --all shows the rule as its source). FILE is passed to the\n"
                        "daemon, which keeps a copy: the file may go away.\n"
                        "\n"
                        "Match (at least one besides --mode):\n"
                        "     --board=NAME        A board from `flashctl boards` (octopus-pro)\n"
                        "     --mcu=MCU           stm32f446xx\n"
                        "     --port=PATH         USB port path or pattern (1-1.3, 1-1.*)\n"
                        "     --serial=SERIAL     USB serial number or pattern\n"
                        "     --usb-id=VID:PID    0483:df11\n"
                        "     --mode=MODE         bootloader (default: ROM DFU or Katapult) or\n"
                        "                         application (Klipper; the job reboots the board)\n"
                        "Action:\n"
                        "     --image=FILE        The image: .bin, Intel HEX or DfuSe .dfu\n"
                        "  -a --address=ADDR      Where a raw image goes (default: the board's application\n"
                        "                         start)\n"
                        "     --no-verify         Do not read the flash back to compare\n"
                        "  -f --force=CHECK       Override a safety check (repeatable; see flash --help)\n"
                        "     --mass-erase        Erase the whole flash first\n"
                        "     --format=FMT        bin, hex or dfu (default: detected)\n"
                        "     --once              Flash one board, then disable the rule\n"
                        "     --always            Flash every matching board (default)\n"
                        "     --max-retries=N     Retries of a failed flash per board (default 3)\n"
                        "     --retry-delay=SEC   Delay before the first retry, doubled each time (2)\n"
                        "     --name=TEXT         A label for the rule\n"
                        "     --disabled          Add the rule disabled\n"
                        "\n"
                        "Boards already present that match are flashed at once when the rule is added\n"
                        "or enabled; `rule add` and `rule enable` say which.\n"
                        "`flashctl watch` shows rules firing and the jobs' progress.\n",
                .run = verb_rule,
        },
        {},
};

const CommandGroup command_group_rule = {
        .name = "rule",
        .verbs = rule_verbs,
        .events = rule_events,
};
