/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * flashctl list, info, boards: the boards flashd sees, and how `flashctl
 * watch` prints their events.
 *
 * Everything is formatted from the daemon's JSON device objects (see
 * proto/API.md); the client shares no code with the daemon beyond framing.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "flashctl.h"
#include "util/macros.h"
#include "output.h"
#include "rpc-error.h"

static OutputColor mode_color(const char *mode)
{
        if (!mode)
                return OUTPUT_COLOR_NONE;
        if (streq(mode, "app"))
                return OUTPUT_COLOR_GREEN;
        if (streq(mode, "dfu") || streq(mode, "katapult") || streq(mode, "rebooting"))
                return OUTPUT_COLOR_YELLOW;
        if (streq(mode, "unknown"))
                return OUTPUT_COLOR_GREY;
        return OUTPUT_COLOR_NONE;
}

/* The node a person would pass to other tools: the tty, else the USB node. */
static const char *device_node(const json_t *d)
{
        const char *s = output_json_str(d, "tty");
        if (!s)
                s = output_json_str(d, "usb_devnode");
        if (!s)
                s = output_json_str(d, "path");
        return s;
}

static const char *candidate_name(const json_t *c)
{
        return json_is_string(c) ? json_string_value(c) : json_string_value(json_object_get(c, "name"));
}

/* "7 flashing/write": the job busy with the device's port, or NULL. */
static char *device_job(const json_t *d)
{
        const json_t *j = json_object_get(d, "job");
        const char *state = output_json_str(j, "state"), *phase = output_json_str(j, "phase");
        char *s = NULL;

        if (!json_is_object(j))
                return NULL;
        if (asprintf(&s, "%" JSON_INTEGER_FORMAT " %s%s%s", json_integer_value(json_object_get(j, "id")),
                     strna(state), phase && !streq(phase, "none") ? "/" : "",
                     phase && !streq(phase, "none") ? phase : "") < 0)
                return NULL;
        return s;
}

/* "octopus-pro", or "octopus|octopus-pro?" while the match is ambiguous. */
static char *device_board(const json_t *d)
{
        const char *board = output_json_str(d, "board");
        const json_t *cands = json_object_get(d, "board_candidates");
        char *s = NULL;

        if (board)
                return strdup(board);
        if (!json_is_array(cands) || json_array_size(cands) == 0)
                return NULL;

        size_t len = 0, i;
        const json_t *c;
        FILE *f = open_memstream(&s, &len);
        if (!f)
                return NULL;
        bool first = true;
        json_array_foreach (cands, i, c) {
                const char *name = candidate_name(c);
                /* One board may be a candidate with several variants. */
                bool seen = false;
                for (size_t j = 0; j < i; j++)
                        seen = seen || streq_ptr(candidate_name(json_array_get(cands, j)), name);
                if (seen)
                        continue;
                fprintf(f, "%s%s", first ? "" : "|", strna(name));
                first = false;
        }
        fputc('?', f);
        if (fclose(f) != 0) {
                free(s);
                return NULL;
        }
        return s;
}

static int verb_list(Flashctl *ctx, int argc, char **argv)
{
        static const struct option options[] = {
                { "mode", required_argument, NULL, 'm' },
                {},
        };
        const char *mode = NULL;
        int c, r;

        while ((c = getopt_long(argc, argv, "m:", options, NULL)) >= 0)
                switch (c) {
                case 'm': {
                        /* a typo would list nothing and look like "no boards" */
                        static const char *const modes[] = { "app",    "dfu",     "katapult",
                                                             "serial", "unknown", NULL };
                        bool known = false;
                        for (const char *const *m = modes; *m; m++)
                                known = known || streq(*m, optarg);
                        if (!known)
                                return flashctl_usage_error(
                                        argv[0], "unknown mode '%s': app, dfu, katapult, serial or unknown",
                                        optarg);
                        mode = optarg;
                        break;
                }
                default:
                        return FLASHCTL_EXIT_USAGE;
                }
        if (optind < argc)
                return flashctl_usage_error(argv[0], "'list' takes no arguments");

        json_auto_t *result = NULL;
        r = flashctl_call(ctx, "device.list", NULL, &result, NULL);
        if (r != 0)
                return r;
        if (!json_is_array(result))
                return flashctl_report_error(ctx, -EBADMSG, "device.list");

        if (mode) {
                /* Filter a copy; --json then still prints daemon objects unchanged. */
                json_auto_t *filtered = json_array();
                size_t i;
                json_t *d;
                if (!filtered)
                        return flashctl_report_error(ctx, -ENOMEM, "list");
                json_array_foreach (result, i, d)
                        if (streq_ptr(output_json_str(d, "mode"), mode))
                                json_array_append(filtered, d);
                json_decref(result);
                result = TAKE_PTR(filtered);
        }

        if (ctx->json)
                return flashctl_print_json_exit(ctx, result);

        static const char *const headers[] = { "PORT", "MODE", "BOARD", "MCU", "DEVICE", "JOB", "LAYOUT" };
        Table *t = NULL;
        r = table_new(&t, ELEMENTSOF(headers), headers);
        if (r < 0)
                return flashctl_report_error(ctx, r, "list");

        size_t i;
        json_t *d;
        json_array_foreach (result, i, d) {
                _cleanup_free_ char *board = device_board(d);
                _cleanup_free_ char *layout = NULL, *job = device_job(d);
                const char *m = output_json_str(d, "mode");

                if (output_json_str(d, "probe_error"))
                        layout = strdup("probe failed (see info)");
                else if (layout_summary(json_object_get(d, "layout"), &layout) < 0)
                        layout = strdup("?");
                const char *cells[] = {
                        output_json_str(d, "id") ? output_json_str(d, "id") : output_json_str(d, "port"),
                        m,
                        board,
                        output_json_str(d, "mcu"),
                        device_node(d),
                        job,
                        layout,
                };
                r = table_add_row(t, cells);
                if (r < 0) {
                        table_free(t);
                        return flashctl_report_error(ctx, r, "list");
                }
                table_set_last_row_color(t, 1, mode_color(m));
        }

        /* The port identifies the board: never cut it; cut the layout last. */
        if (table_rows(t) > 0)
                table_print(t, stdout, output_terminal_width(stdout), ctx->use_color, ctx->legend);
        if (ctx->legend)
                printf("%s%zu device%s listed.\n", table_rows(t) > 0 ? "\n" : "", table_rows(t),
                       table_rows(t) == 1 ? "" : "s");
        table_free(t);
        return FLASHCTL_EXIT_OK;
}

/* Keys printed by print_device() itself; the rest go through the generic printer. */
/* clang-format off */
static const char *const device_known_keys[] = {
        "id",          "port",          "mode",
        "usb_id",      "manufacturer",  "product",
        "serial",      "mcu",           "board",
        "board_title", "board_variant", "board_candidates",
        "path",        "tty",           "usb_devnode",
        "by_id",       "busnum",        "devnum",
        "layout",      "alt_settings",  "transfer_size",
        "probed",      "diagnostics",   "hints",
        "since",       "previous_mcu",  "probe_error",
        "flash_base",  "flash_size",    "app_offset",
        "app_address", "board_layout", "present",
        "job",
        NULL,
};
/* clang-format on */

static void print_field(const char *label, const char *value)
{
        if (!value)
                return;
        printf("%15s: ", label);
        output_fputs_sanitized(value, stdout);
        fputc('\n', stdout);
}

/* Which part of the flash a sector belongs to, by the application start. */
static const char *sector_use(uint64_t at, uint64_t size, int64_t app)
{
        if (app < 0)
                return "";
        if (at + size <= (uint64_t)app)
                return "bootloader";
        if (at >= (uint64_t)app)
                return "application";
        return "bootloader+application";
}

typedef struct SectorRun {
        unsigned first, n;
        uint64_t start, size;
        unsigned flags;
        const char *use;
} SectorRun;

static void sector_run_print(const SectorRun *run)
{
        char num[32], range[2 * FORMAT_BUF_MAX + 2], size[FORMAT_BUF_MAX + 16], a[FORMAT_BUF_MAX],
                b[FORMAT_BUF_MAX], sz[FORMAT_BUF_MAX], fl[FORMAT_BUF_MAX];

        if (run->n == 0)
                return;
        if (run->n == 1)
                snprintf(num, sizeof(num), "%u", run->first);
        else
                snprintf(num, sizeof(num), "%u-%u", run->first, run->first + run->n - 1);
        snprintf(range, sizeof(range), "%s-%s", format_address(a, run->start),
                 format_address(b, run->start + (uint64_t)run->n * run->size - 1));
        if (run->n == 1)
                snprintf(size, sizeof(size), "%s", format_size(sz, run->size));
        else
                snprintf(size, sizeof(size), "%u x %s", run->n, format_size(sz, run->size));
        if (run->use[0])
                printf("  %7s  %-23s  %-13s  %-4s  %s\n", num, range, size, format_flags(fl, run->flags),
                       run->use);
        else
                printf("  %7s  %-23s  %-13s  %s\n", num, range, size, format_flags(fl, run->flags));
}

/* Sectors are numbered across the whole region, as in the reference manual
 * (sector 0..11 on an F429); neighbours of one size, permission and use
 * share a row (a G0 has 256 pages of 2 KiB). `app` is the application
 * start, or -1. */
static void print_sectors(const json_t *layout, int64_t app, bool use_color)
{
        size_t i;
        const json_t *region;
        uint64_t total = 0;
        char a[FORMAT_BUF_MAX], sz[FORMAT_BUF_MAX];

        json_array_foreach (layout, i, region) {
                const char *name = output_json_str(region, "name");
                json_int_t addr = json_integer_value(json_object_get(region, "address"));
                printf("\n%sRegion ", output_color_on(OUTPUT_COLOR_BOLD, use_color));
                output_fputs_sanitized(name ? name : "(unnamed)", stdout);
                printf(" at %s%s\n", format_address(a, (uint64_t)addr), output_color_off(use_color));
                if (app >= 0)
                        printf("  %7s  %-23s  %-13s  %-4s  %s\n", "SECTORS", "ADDRESS", "SIZE", "PERM",
                               "USE");
                else
                        printf("  %7s  %-23s  %-13s  %s\n", "SECTORS", "ADDRESS", "SIZE", "PERM");

                uint64_t at = (uint64_t)addr;
                unsigned n = 0;
                size_t j;
                const json_t *seg;
                SectorRun run = {};
                json_array_foreach (json_object_get(region, "sectors"), j, seg) {
                        json_int_t count = json_integer_value(json_object_get(seg, "count"));
                        json_int_t size = json_integer_value(json_object_get(seg, "size"));
                        json_int_t flags = json_integer_value(json_object_get(seg, "flags"));
                        if (count < 0 || size <= 0)
                                continue;
                        for (json_int_t k = 0; k < count; k++, n++) {
                                const char *use = sector_use(at, (uint64_t)size, app);
                                if (run.n == 0 || run.size != (uint64_t)size ||
                                    run.flags != (unsigned)flags || !streq(run.use, use)) {
                                        sector_run_print(&run);
                                        run = (SectorRun){ .first = n,
                                                           .start = at,
                                                           .size = (uint64_t)size,
                                                           .flags = (unsigned)flags,
                                                           .use = use };
                                }
                                run.n++;
                                at += (uint64_t)size;
                                total += (uint64_t)size;
                        }
                }
                sector_run_print(&run);
        }
        printf("  Total: %s\n", format_size(sz, total));
}

/* A diagnostic or hint: a string, or an object with a message. */
static void print_notes(const char *title, const json_t *notes, OutputColor color, bool use_color)
{
        size_t i;
        const json_t *n;

        if (!json_is_array(notes) || json_array_size(notes) == 0)
                return;
        printf("\n%s%s:%s\n", output_color_on(OUTPUT_COLOR_BOLD, use_color), title,
               output_color_off(use_color));
        json_array_foreach (notes, i, n) {
                const char *msg = json_is_string(n) ? json_string_value(n) : output_json_str(n, "message");
                _cleanup_free_ char *dump = NULL;
                if (!msg) {
                        dump = json_dumps(n, JSON_COMPACT | JSON_ENCODE_ANY);
                        msg = dump;
                }
                printf("  %s•%s ", output_color_on(color, use_color),
                       color == OUTPUT_COLOR_NONE ? "" : output_color_off(use_color));
                output_fputs_sanitized(strempty(msg), stdout);
                fputc('\n', stdout);
        }
}

/* A uint from the JSON, or -1. */
static int64_t uint_field(const json_t *o, const char *key)
{
        const json_t *v = json_object_get(o, key);
        return json_is_integer(v) && json_integer_value(v) >= 0 ? (int64_t)json_integer_value(v) : -1;
}

static void print_area(const char *label, const json_t *o, const char *base_key, const char *size_key)
{
        char a[FORMAT_BUF_MAX], b[FORMAT_BUF_MAX];
        int64_t base = uint_field(o, base_key), size = uint_field(o, size_key);

        if (base < 0 || size < 0)
                return;
        printf("%17s: %s at %s\n", label, format_size(b, (uint64_t)size), format_address(a, (uint64_t)base));
}

/* A board from the database (board.info): what flashd would do with it. */
static void print_board(Flashctl *ctx, const json_t *b)
{
        static const char *const known[] = { "name",   "title",    "bootloader", "reboot",
                                             "source", "variants", "mcus",       NULL };
        bool color = ctx->use_color;
        char a[FORMAT_BUF_MAX], sz[FORMAT_BUF_MAX];

        printf("%s%s%s", output_color_on(OUTPUT_COLOR_BOLD, color), strna(output_json_str(b, "name")),
               output_color_off(color));
        if (output_json_str(b, "title"))
                printf(" - %s", output_json_str(b, "title"));
        printf(" %s(board database; not connected)%s\n", output_color_on(OUTPUT_COLOR_GREY, color),
               output_color_off(color));
        print_field("Bootloader", output_json_str(b, "bootloader"));
        print_field("Reboot", output_json_str(b, "reboot"));
        print_field("Defined in", output_json_str(b, "source"));
        output_print_fields(stdout, b, known, 0, 15);

        size_t i;
        const json_t *v;
        json_array_foreach (json_object_get(b, "variants"), i, v) {
                if (!json_is_object(v))
                        continue;
                static const char *const vknown[] = {
                        "id",          "mcu",       "flash_base", "flash_size", "app_offset",
                        "app_address", "ram_start", "ram_size",   "layout",     "layout_string",
                        "usb",         "hints",     NULL
                };
                printf("\n%sVariant %s%s (%s)\n", output_color_on(OUTPUT_COLOR_BOLD, color),
                       strna(output_json_str(v, "id")), output_color_off(color),
                       strna(output_json_str(v, "mcu")));
                print_area("Flash", v, "flash_base", "flash_size");
                int64_t app = uint_field(v, "app_address"), off = uint_field(v, "app_offset");
                if (app >= 0 && off >= 0)
                        printf("%17s: %s (after a %s bootloader)\n", "Application at",
                               format_address(a, (uint64_t)app), format_size(sz, (uint64_t)off));
                print_area("RAM", v, "ram_start", "ram_size");
                const json_t *usb = json_object_get(v, "usb");
                if (json_is_object(usb)) {
                        const char *mode;
                        const json_t *id;
                        printf("%17s:", "USB ids");
                        json_object_foreach ((json_t *)usb, mode, id)
                                if (json_is_string(id))
                                        printf(" %s %s", mode, json_string_value(id));
                        fputc('\n', stdout);
                }
                _cleanup_free_ char *summary = NULL;
                if (layout_summary(json_object_get(v, "layout"), &summary) >= 0 && summary[0])
                        printf("%17s: %s\n", "Layout", summary);
                if (!streq_ptr(output_json_str(v, "reboot"), output_json_str(b, "reboot")))
                        printf("%17s: %s\n", "Reboot", strna(output_json_str(v, "reboot")));
                output_print_fields(stdout, v, vknown, 0, 17);
                print_notes("Hints", json_object_get(v, "hints"), OUTPUT_COLOR_BLUE, color);
        }
}

static void print_device(Flashctl *ctx, const json_t *d)
{
        char buf[FORMAT_BUF_MAX];
        _cleanup_free_ char *board = device_board(d);
        const char *mode = output_json_str(d, "mode");
        bool color = ctx->use_color;

        print_field("Port",
                    output_json_str(d, "id") ? output_json_str(d, "id") : output_json_str(d, "port"));
        if (mode)
                printf("%15s: %s%s%s\n", "Mode", output_color_on(mode_color(mode), color), mode,
                       mode_color(mode) != OUTPUT_COLOR_NONE ? output_color_off(color) : "");
        {
                _cleanup_free_ char *job = device_job(d);
                if (job && json_is_false(json_object_get(d, "present")))
                        printf("%15s: job %s (the board is away from its port while the job reboots it)\n",
                               "Job", job);
                else if (job)
                        printf("%15s: job %s\n", "Job", job);
        }
        print_field("USB id", output_json_str(d, "usb_id"));
        print_field("Manufacturer", output_json_str(d, "manufacturer"));
        print_field("Product", output_json_str(d, "product"));
        print_field("Serial", output_json_str(d, "serial"));
        print_field("MCU", output_json_str(d, "mcu"));
        if (board && output_json_str(d, "board_title"))
                printf("%15s: %s (%s)\n", "Board", board, output_json_str(d, "board_title"));
        else
                print_field("Board", board ? board : "not in the board database");
        print_field("Board variant", output_json_str(d, "board_variant"));
        const json_t *cands = json_object_get(d, "board_candidates");
        if (json_array_size(cands) > 1 || (!output_json_str(d, "board") && json_array_size(cands) > 0)) {
                /* Several boards fit what the device shows of itself. */
                size_t i;
                const json_t *c;
                /* One line each, with what tells them apart for a flash. */
                json_array_foreach (cands, i, c) {
                        const char *name =
                                json_is_string(c) ? json_string_value(c) : output_json_str(c, "name");
                        const char *variant = output_json_str(c, "variant");
                        int64_t capp = uint_field(c, "app_address"), coff = uint_field(c, "app_offset");
                        if (i == 0)
                                printf("%15s: ", "Could be");
                        else
                                printf("%17s", "");
                        printf("%s%s%s", strna(name), variant ? "/" : "", strempty(variant));
                        if (output_json_str(c, "mcu"))
                                printf(" (%s", output_json_str(c, "mcu"));
                        else
                                printf(" (");
                        if (capp >= 0 && coff >= 0)
                                printf("%sapplication at %s)", output_json_str(c, "mcu") ? ", " : "",
                                       format_address(buf, (uint64_t)capp));
                        else
                                printf(")");
                        fputc('\n', stdout);
                }
        }
        print_field("Previous MCU", output_json_str(d, "previous_mcu"));
        print_field("TTY", output_json_str(d, "tty"));
        print_field("By-id", output_json_str(d, "by_id"));
        print_field("USB node", output_json_str(d, "usb_devnode"));
        if (output_json_str(d, "path") && !streq_ptr(output_json_str(d, "path"), device_node(d)))
                print_field("Path", output_json_str(d, "path"));
        json_t *busnum = json_object_get(d, "busnum"), *devnum = json_object_get(d, "devnum");
        if (json_is_integer(busnum) && json_is_integer(devnum))
                printf("%15s: %03" JSON_INTEGER_FORMAT "/%03" JSON_INTEGER_FORMAT "\n", "Bus/device",
                       json_integer_value(busnum), json_integer_value(devnum));
        json_t *since = json_object_get(d, "since");
        if (json_is_number(since) && json_number_value(since) > 0) {
                char when[64];
                time_t t = (time_t)json_number_value(since);
                struct tm tm;
                if (localtime_r(&t, &tm) && strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm) > 0)
                        print_field("Since", when);
        }
        if (streq_ptr(mode, "dfu") && json_is_false(json_object_get(d, "probed")))
                print_field("Probed", "not yet (the layout is being read)");
        print_field("Probe error", output_json_str(d, "probe_error"));
        json_t *ts = json_object_get(d, "transfer_size");
        if (json_is_integer(ts) && json_integer_value(ts) > 0)
                print_field("Transfer size", format_size(buf, (uint64_t)json_integer_value(ts)));

        /* Fields a newer daemon added that this client does not know yet. */
        json_auto_t *rest = json_object();
        if (rest) {
                const char *key;
                json_t *v;
                json_object_foreach ((json_t *)d, key, v) {
                        bool known = false;
                        for (const char *const *k = device_known_keys; *k; k++)
                                known = known || streq(*k, key);
                        if (!known)
                                json_object_set(rest, key, v);
                }
                output_print_fields(stdout, rest, NULL, 0, 15);
        }

        /* The flash as the board database knows it, in every mode: what
         * `flash` would write where. */
        int64_t base = uint_field(d, "flash_base"), fsize = uint_field(d, "flash_size");
        int64_t app = uint_field(d, "app_address"), off = uint_field(d, "app_offset");
        char a[FORMAT_BUF_MAX];
        if (base >= 0 && fsize > 0)
                printf("%15s: %s at %s\n", "Flash", format_size(buf, (uint64_t)fsize),
                       format_address(a, (uint64_t)base));
        if (app >= 0 && off > 0)
                printf("%15s: %s (after a %s bootloader)\n", "Application at",
                       format_address(a, (uint64_t)app), format_size(buf, (uint64_t)off));
        else if (app >= 0)
                printf("%15s: %s (no bootloader)\n", "Application at", format_address(a, (uint64_t)app));

        const json_t *layout = json_object_get(d, "layout");
        bool from_db = false;
        if (!json_is_array(layout) || json_array_size(layout) == 0) {
                layout = json_object_get(d, "board_layout");
                from_db = true;
        }
        if (json_is_array(layout) && json_array_size(layout) > 0) {
                _cleanup_free_ char *summary = NULL;
                if (layout_summary(layout, &summary) >= 0) {
                        if (from_db) {
                                _cleanup_free_ char *labelled = NULL;
                                if (asprintf(&labelled, "%s (board database)", summary) >= 0)
                                        print_field("Layout", labelled);
                        } else
                                print_field("Layout", summary);
                }
                print_sectors(layout, app, color);
        }

        const json_t *alts = json_object_get(d, "alt_settings");
        if (json_is_array(alts) && json_array_size(alts) > 0) {
                size_t i;
                const json_t *alt;
                printf("\n%sAlt settings:%s\n", output_color_on(OUTPUT_COLOR_BOLD, color),
                       output_color_off(color));
                json_array_foreach (alts, i, alt) {
                        _cleanup_free_ char *summary = NULL;
                        const char *diag = output_json_str(alt, "diagnostic");
                        json_t *num = json_object_get(alt, "alt");
                        if (layout_summary(json_object_get(alt, "regions"), &summary) < 0)
                                summary = NULL;
                        printf("  %2" JSON_INTEGER_FORMAT "  ", json_integer_value(num));
                        output_fputs_escaped(strna(output_json_str(alt, "name")), stdout);
                        if (summary && summary[0])
                                printf("  %s", summary);
                        if (json_is_true(json_object_get(alt, "string_patched")))
                                printf("  %s(short descriptor read as received)%s",
                                       output_color_on(OUTPUT_COLOR_YELLOW, color), output_color_off(color));
                        if (json_is_true(json_object_get(alt, "truncated")))
                                printf("  %s(repaired)%s", output_color_on(OUTPUT_COLOR_YELLOW, color),
                                       output_color_off(color));
                        fputc('\n', stdout);
                        if (diag) {
                                fputs("      ", stdout);
                                output_fputs_sanitized(diag, stdout);
                                fputc('\n', stdout);
                        }
                }
        }

        print_notes("Diagnostics", json_object_get(d, "diagnostics"), OUTPUT_COLOR_YELLOW, color);
        print_notes("Hints", json_object_get(d, "hints"), OUTPUT_COLOR_BLUE, color);
}

static int verb_info(Flashctl *ctx, int argc, char **argv)
{
        static const struct option options[] = { {} };
        int c, r;

        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                return FLASHCTL_EXIT_USAGE;
        if (argc - optind != 1)
                return flashctl_usage_error(argv[0], "'info' needs exactly one DEVICE or BOARD");
        const char *arg = argv[optind];

        /* The daemon resolves every name a device goes by (port, tty, by-id
         * link, device node, the name of the one connected board of a kind). */
        json_auto_t *params = json_pack("{s:s}", "device", arg);
        json_auto_t *device = NULL;
        RpcClientError e = {};
        if (!params)
                return flashctl_report_error(ctx, -ENOMEM, "info");
        r = flashctl_call(ctx, "device.info", params, &device, &e);
        if (r == FLASHCTL_EXIT_DAEMON_ERROR &&
            rpc_error_from_code((int)e.code) != RPC_ERROR_DEVICE_NOT_FOUND) {
                /* Ambiguous, permission, ...: the daemon's message says it all. */
                flashctl_print_daemon_error(&e);
                rpc_client_error_done(&e);
                return r;
        }
        if (r == FLASHCTL_EXIT_DAEMON_ERROR) {
                /* Not connected: maybe a board from the database. */
                json_auto_t *bparams = json_pack("{s:s}", "board", arg);
                json_auto_t *board = NULL;
                RpcClientError be = {};
                int k = flashctl_call(ctx, "board.info", bparams, &board, &be);
                if (k == FLASHCTL_EXIT_DAEMON_ERROR &&
                    rpc_error_from_code((int)be.code) != RPC_ERROR_BOARD_NOT_FOUND) {
                        flashctl_print_daemon_error(&be);
                        rpc_client_error_done(&e);
                        rpc_client_error_done(&be);
                        return k;
                }
                if (k == FLASHCTL_EXIT_DAEMON_ERROR) {
                        fprintf(stderr, "flashctl: %s\n", e.message);
                        fprintf(stderr,
                                "no board '%s' in the board database either (flashctl boards lists them)\n",
                                arg);
                        rpc_client_error_done(&e);
                        rpc_client_error_done(&be);
                        return FLASHCTL_EXIT_DAEMON_ERROR;
                }
                rpc_client_error_done(&e);
                if (k != 0)
                        return k;
                if (ctx->json)
                        return flashctl_print_json_exit(ctx, board);
                if (!json_is_object(board))
                        return flashctl_report_error(ctx, -EBADMSG, "board.info");
                print_board(ctx, board);
                return FLASHCTL_EXIT_OK;
        }
        rpc_client_error_done(&e);
        if (r != 0)
                return r;

        if (ctx->json)
                return flashctl_print_json_exit(ctx, device);
        if (!json_is_object(device))
                return flashctl_report_error(ctx, -EBADMSG, "device.info");
        print_device(ctx, device);
        return FLASHCTL_EXIT_OK;
}

static int verb_boards(Flashctl *ctx, int argc, char **argv)
{
        static const struct option options[] = { {} };
        int c;

        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                return FLASHCTL_EXIT_USAGE;
        if (optind < argc)
                return flashctl_usage_error(argv[0], "'boards' takes no arguments");

        json_auto_t *result = NULL;
        int r = flashctl_call(ctx, "board.list", NULL, &result, NULL);
        if (r != 0)
                return r;
        if (ctx->json)
                return flashctl_print_json_exit(ctx, result);
        if (!json_is_array(result))
                return flashctl_report_error(ctx, -EBADMSG, "board.list");

        static const char *const headers[] = { "BOARD", "MCU", "DESCRIPTION" };
        Table *t = NULL;
        r = table_new(&t, ELEMENTSOF(headers), headers);
        if (r < 0)
                return flashctl_report_error(ctx, r, "boards");
        size_t i;
        json_t *b;
        json_array_foreach (result, i, b) {
                /* Entries are names, or objects with a name and their MCU variants. */
                const char *name = json_is_string(b) ? json_string_value(b) : output_json_str(b, "name");
                _cleanup_free_ char *mcus = NULL;
                const json_t *m = json_object_get(b, "mcus");
                if (!m)
                        m = json_object_get(b, "variants");
                if (json_is_array(m)) {
                        size_t len = 0, j;
                        const json_t *v;
                        FILE *f = open_memstream(&mcus, &len);
                        if (f) {
                                json_array_foreach (m, j, v) {
                                        const char *s = json_is_string(v) ? json_string_value(v)
                                                                          : output_json_str(v, "mcu");
                                        fprintf(f, "%s%s", j ? ", " : "", strna(s));
                                }
                                fclose(f);
                        }
                } else if (output_json_str(b, "mcu"))
                        mcus = strdup(output_json_str(b, "mcu"));
                const char *cells[] = { name, mcus,
                                        output_json_str(b, "description") ? output_json_str(b, "description")
                                                                          : output_json_str(b, "title") };
                r = table_add_row(t, cells);
                if (r < 0) {
                        table_free(t);
                        return flashctl_report_error(ctx, r, "boards");
                }
        }
        table_print(t, stdout, output_terminal_width(stdout), ctx->use_color, ctx->legend);
        if (ctx->legend)
                printf("\n%zu board%s known.\n", table_rows(t), table_rows(t) == 1 ? "" : "s");
        table_free(t);
        return FLASHCTL_EXIT_OK;
}

/* --- events (flashctl watch, cmd-watch.c) --- */

static char *format_device_event(const char *method, json_t *params, bool use_color)
{
        static const struct {
                const char *method;
                const char *word;
        } words[] = {
                { "notify_device_added", "added" },
                { "notify_device_changed", "changed" },
                { "notify_device_removed", "removed" },
        };
        const char *word = method;
        const json_t *d = json_array_get(params, 0);
        char *s = NULL;

        for (size_t i = 0; i < ELEMENTSOF(words); i++)
                if (streq(words[i].method, method))
                        word = words[i].word;

        _cleanup_free_ char *board = device_board(d);
        const char *mode = output_json_str(d, "mode");
        if (asprintf(&s, "%-8s %-12s %s%-8s%s %-16s %s", word,
                     strna(output_json_str(d, "id") ? output_json_str(d, "id") : output_json_str(d, "port")),
                     output_color_on(mode_color(mode), use_color), mode ? mode : "-",
                     mode_color(mode) != OUTPUT_COLOR_NONE ? output_color_off(use_color) : "",
                     board ? board : "-", strempty(device_node(d))) < 0)
                return NULL;
        /* no trailing blanks when there is no device node */
        for (size_t n = strlen(s); n > 0 && s[n - 1] == ' '; n--)
                s[n - 1] = '\0';
        return s;
}

static const EventPrinter device_events[] = {
        { "notify_device_added", format_device_event },
        { "notify_device_changed", format_device_event },
        { "notify_device_removed", format_device_event },
        {},
};

static const Verb device_verbs[] = {
        {
                .name = "list",
                .summary = "List connected boards, their mode and flash layout",
                .help = "Options:\n"
                        "  -m --mode=MODE         Only devices in MODE (app, dfu, katapult, serial, "
                        "unknown)\n"
                        "\n"
                        "With --json, one JSON array of device objects exactly as the daemon sends them.\n",
                .run = verb_list,
        },
        {
                .name = "info",
                .args = "DEVICE|BOARD",
                .summary = "Show everything known about a device or board",
                .help = "DEVICE is a port path (1-1.3), a tty (/dev/ttyACM0), a /dev/serial/by-id path,\n"
                        "a USB device node, or the name of a connected board (octopus-pro). A board that\n"
                        "is not connected is shown from the board database.\n"
                        "\n"
                        "Prints the flash layout sector by sector (address range, size, permissions:\n"
                        "r readable, e erasable, w writeable), the DFU alt settings, diagnostics and "
                        "hints.\n",
                .run = verb_info,
        },
        {
                .name = "boards",
                .summary = "List the boards in the daemon's board database",
                .run = verb_boards,
        },
        {},
};

const CommandGroup command_group_device = {
        .name = "device",
        .verbs = device_verbs,
        .events = device_events,
};
