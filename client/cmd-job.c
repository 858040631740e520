/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * flashctl flash, jobs, job, cancel: flash jobs (proto/API.md, "Jobs").
 *
 * `flash` passes the image file by descriptor (SCM_RIGHTS on the request),
 * then follows the job through notify_job_update until it ends. Its exit
 * status says how it ended (see flashctl.1): 0 only when the board is back
 * running the new image.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "flashctl.h"
#include "util/macros.h"
#include "output.h"
#include "rpc-error.h"

/* Exit status of `flash` beyond the common ones (flashctl.h). */
enum {
        FLASHCTL_EXIT_REFUSED = 5,   /* a safety check or an unusable image: nothing was erased */
        FLASHCTL_EXIT_FAILED = 6,    /* the flash failed (board gone, bootloader error, verify, ...) */
        FLASHCTL_EXIT_CANCELLED = 7, /* the job was cancelled */
        FLASHCTL_EXIT_TIMEOUT = 8,   /* the board did not show up in its bootloader, or not come back */
};

static uint64_t u64_field(const json_t *o, const char *key)
{
        json_t *v = json_object_get(o, key);
        return json_is_integer(v) && json_integer_value(v) > 0 ? (uint64_t)json_integer_value(v) : 0;
}

static bool job_final(const json_t *job)
{
        const char *s = output_json_str(job, "state");
        return s &&
               (streq(s, "done") || streq(s, "failed") || streq(s, "cancelled") || streq(s, "superseded"));
}

static const char *job_error_name(const json_t *job)
{
        return output_json_str(json_object_get(job, "error"), "name");
}

/* The exit status for a job error name (proto/API.md job error names). */
static int exit_for_error(const char *name)
{
        if (!name)
                return FLASHCTL_EXIT_FAILED;
        /* nothing was done to the board: refused */
        if (strncmp(name, "check-", 6) == 0 || streq(name, "image-invalid") ||
            streq(name, "image-too-large") || streq(name, "tty-busy"))
                return FLASHCTL_EXIT_REFUSED;
        if (streq(name, "bootloader-timeout") || streq(name, "app-timeout"))
                return FLASHCTL_EXIT_TIMEOUT;
        if (streq(name, "target-not-found") || streq(name, "target-ambiguous"))
                return FLASHCTL_EXIT_DAEMON_ERROR;
        return FLASHCTL_EXIT_FAILED;
}

static int exit_for_job(const json_t *job)
{
        const char *s = output_json_str(job, "state");

        if (s && streq(s, "done"))
                return FLASHCTL_EXIT_OK;
        /* superseded: a newer job for the board took its place */
        if (s && (streq(s, "cancelled") || streq(s, "superseded")))
                return FLASHCTL_EXIT_CANCELLED;
        return exit_for_error(job_error_name(job));
}

/* "flashing/write" or "waiting-for-device" */
static void job_state_text(const json_t *job, char *buf, size_t size)
{
        const char *state = output_json_str(job, "state"), *phase = output_json_str(job, "phase");

        if (phase && !streq(phase, "none"))
                snprintf(buf, size, "%s/%s", strna(state), phase);
        else
                snprintf(buf, size, "%s", strna(state));
}

static OutputColor state_color(const char *state)
{
        if (!state)
                return OUTPUT_COLOR_NONE;
        if (streq(state, "done"))
                return OUTPUT_COLOR_GREEN;
        if (streq(state, "failed") || streq(state, "interrupted"))
                return OUTPUT_COLOR_RED;
        if (streq(state, "cancelled") || streq(state, "superseded"))
                return OUTPUT_COLOR_GREY;
        return OUTPUT_COLOR_YELLOW;
}

/* "4.2 s", "1min 5s": how long something took */
static const char *format_seconds(char buf[static FORMAT_BUF_MAX], double s)
{
        if (s < 0)
                s = 0;
        if (s < 60)
                snprintf(buf, FORMAT_BUF_MAX, "%.1f s", s);
        else
                format_duration(buf, (uint64_t)(s + 0.5));
        return buf;
}

/* What a finished flash did, from the job's result: "6 sectors, 400 KiB
 * written and verified", or NULL when nothing was written. */
static char *result_summary(const json_t *job)
{
        const json_t *res = json_object_get(job, "result");
        uint64_t sectors = u64_field(res, "sectors_written"), bytes = u64_field(res, "bytes_written");
        uint64_t verified = u64_field(res, "bytes_verified"),
                 unchanged = u64_field(res, "sectors_unchanged");
        char sz[FORMAT_BUF_MAX], more[64] = "";
        char *s = NULL;

        if (!json_is_object(res) || (sectors == 0 && bytes == 0))
                return NULL;
        if (unchanged > 0)
                snprintf(more, sizeof(more), " (%" PRIu64 " unchanged sector%s skipped)", unchanged,
                         unchanged == 1 ? "" : "s");
        if (asprintf(&s, "%" PRIu64 " sector%s, %s written%s%s", sectors, sectors == 1 ? "" : "s",
                     format_size(sz, bytes), verified > 0 ? " and verified" : " (not verified)", more) < 0)
                return NULL;
        return s;
}

/* How long the job took from submission to its end, in seconds; -1 unknown. */
static double job_duration(const json_t *job)
{
        double c = json_number_value(json_object_get(job, "created")),
               f = json_number_value(json_object_get(job, "finished"));
        return c > 0 && f >= c ? f - c : -1;
}

/* "octopus-pro on 1-1.3", "octopus-pro (or octopus) on 1-1.3" when the
 * device could be either and the flash treats them alike, or "the board on
 * 1-1.3" when the job names none */
static void job_board_text(const json_t *job, char *buf, size_t size)
{
        const json_t *alt = json_object_get(job, "board_alternatives");
        const char *port = output_json_str(job, "port") ? output_json_str(job, "port") : "its port";
        size_t n = 0, i;
        const json_t *a;

        if (!output_json_str(job, "board")) {
                snprintf(buf, size, "the board on %s", port);
                return;
        }
        n = (size_t)snprintf(buf, size, "%s", output_json_str(job, "board"));
        json_array_foreach (alt, i, a)
                if (n < size && json_is_string(a))
                        n += (size_t)snprintf(buf + n, size - n, "%s%s", i == 0 ? " (or " : " or ",
                                              json_string_value(a));
        if (n < size && json_array_size(alt) > 0)
                n += (size_t)snprintf(buf + n, size - n, ")");
        if (n < size)
                snprintf(buf + n, size - n, " on %s", port);
}

/* The flash size of what TARGET names, for messages: a connected device's
 * reported layout, else its board variant's, else the largest variant of the
 * board so named; 0 when nothing says. */
static uint64_t target_flash_size(Flashctl *ctx, const char *target)
{
        json_auto_t *dev = NULL, *board = NULL, *dp = json_pack("{s:s}", "device", target);
        RpcClientError e = {};
        char name[128] = "", variant[64] = "";
        uint64_t size = 0, largest = 0;
        size_t i;
        json_t *v;

        if (dp && flashctl_call(ctx, "device.info", dp, &dev, &e) == 0) {
                const json_t *region = json_array_get(json_object_get(dev, "layout"), 0);
                json_array_foreach (json_object_get(region, "sectors"), i, v)
                        size += u64_field(v, "count") * u64_field(v, "size");
                if (size > 0)
                        return size;
                snprintf(name, sizeof(name), "%s", strempty(output_json_str(dev, "board")));
                snprintf(variant, sizeof(variant), "%s", strempty(output_json_str(dev, "board_variant")));
        }
        rpc_client_error_done(&e);

        json_auto_t *bp = json_pack("{s:s}", "board", name[0] ? name : target);
        if (!bp || flashctl_call(ctx, "board.info", bp, &board, &e) != 0) {
                rpc_client_error_done(&e);
                return 0;
        }
        json_array_foreach (json_object_get(board, "variants"), i, v) {
                uint64_t s = u64_field(v, "flash_size");
                if (variant[0] && streq_ptr(output_json_str(v, "id"), variant))
                        return s;
                largest = MAX(largest, s);
        }
        return largest;
}

/* ---- following one job ---- */

typedef struct Follow {
        Flashctl *ctx;
        uint64_t id;
        bool tty; /* progress bar on stderr */
        json_t *last;
        char last_line[256]; /* last plain line printed, to print changes only */
        const char *last_message;
        bool bar_shown;
        const char *target, *image; /* for the next command after a failure (flash only) */
} Follow;

static bool job_waiting(const json_t *job)
{
        const char *s = output_json_str(job, "state");
        return s && (streq(s, "waiting-for-device") || streq(s, "waiting-for-app"));
}

/* "12 s of 600 s" while the job waits for its board */
static bool wait_text(const json_t *job, char *buf, size_t size)
{
        const json_t *w = json_object_get(job, "wait");
        double started = json_number_value(json_object_get(w, "started")),
               limit = json_number_value(json_object_get(w, "timeout_sec"));
        struct timespec ts;
        char a[FORMAT_BUF_MAX], b[FORMAT_BUF_MAX];

        if (!job_waiting(job) || !json_is_object(w) || started <= 0)
                return false;
        clock_gettime(CLOCK_REALTIME, &ts);
        double now = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
        snprintf(buf, size, "%s of %s", format_duration(a, (uint64_t)MAX(now - started, 0.0)),
                 format_duration(b, (uint64_t)(limit + 0.5)));
        return true;
}

/* The waiting line on a terminal, redrawn every second. */
static void follow_show_wait(Follow *f, const json_t *job)
{
        char state[64], w[2 * FORMAT_BUF_MAX + 8];

        if (!f->tty || f->ctx->json || !wait_text(job, w, sizeof(w)))
                return;
        job_state_text(job, state, sizeof(state));
        fprintf(stderr, "\r\033[K%-16s %s", state, w);
        fflush(stderr);
        f->bar_shown = true;
}

static void follow_clear_bar(Follow *f)
{
        if (f->bar_shown) {
                fputs("\r\033[K", stderr);
                f->bar_shown = false;
        }
}

static void follow_show(Follow *f, const json_t *job)
{
        char state[64], done[FORMAT_BUF_MAX], total[FORMAT_BUF_MAX], rate[FORMAT_BUF_MAX], line[256];
        uint64_t bd = u64_field(job, "bytes_done"), bt = u64_field(job, "bytes_total");
        double r = json_number_value(json_object_get(job, "rate"));
        const char *message = output_json_str(job, "message");
        bool moving;
        char ts[32];

        job_state_text(job, state, sizeof(state));
        moving = output_json_str(job, "phase") && !streq(output_json_str(job, "phase"), "none") && bt > 0;

        if (f->ctx->json) {
                json_auto_t *o = json_pack("{s:s, s:O}", "time", flashctl_time_now(ts, true), "job", job);
                if (o) {
                        json_dumpf(o, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
                        fputc('\n', stdout);
                        fflush(stdout);
                }
                return;
        }

        /* Messages (the board's hint while waiting, ...) on their own line,
         * each hint on a line of its own. */
        if (message && (!f->last_message || !streq(message, f->last_message)) && !job_final(job)) {
                const json_t *hints = json_object_get(json_object_get(job, "wait"), "hints");
                char w[2 * FORMAT_BUF_MAX + 8];
                follow_clear_bar(f);
                if (json_array_size(hints) > 0 && wait_text(job, w, sizeof(w))) {
                        size_t i;
                        const json_t *h;
                        fprintf(stderr, "%s: the board has not shown up yet (%s); the job keeps waiting\n",
                                state, w);
                        json_array_foreach (hints, i, h) {
                                fputs("Hint: ", stderr);
                                output_fputs_sanitized(strempty(json_string_value(h)), stderr);
                                fputc('\n', stderr);
                        }
                } else {
                        fprintf(stderr, "%s: ", state);
                        output_fputs_sanitized(message, stderr);
                        fputc('\n', stderr);
                }
        }

        if (f->tty && moving) {
                unsigned width = output_terminal_width(stderr), bar = 24, fill;
                char eta[FORMAT_BUF_MAX] = "";
                if (width > 0 && width < 90)
                        bar = width > 70 ? 10 : 0;
                fill = bt ? (unsigned)(bar * MIN(bd, bt) / bt) : 0;
                if (r > 1 && bd < bt)
                        snprintf(eta, sizeof(eta), " ETA %s",
                                 format_duration(rate, (uint64_t)((double)(bt - bd) / r) + 1));
                fprintf(stderr, "\r\033[K%-16s [", state);
                for (unsigned i = 0; i < bar; i++)
                        fputc(i < fill ? '#' : '-', stderr);
                fprintf(stderr, "] %3u%% %s / %s", (unsigned)(bt ? 100 * MIN(bd, bt) / bt : 0),
                        format_size(done, bd), format_size(total, bt));
                if (r > 1)
                        fprintf(stderr, " %s/s%s", format_size(rate, (uint64_t)r), eta);
                fflush(stderr);
                f->bar_shown = true;
        } else {
                /* plain lines: state changes only */
                snprintf(line, sizeof(line), "%s", state);
                if (!streq(line, f->last_line)) {
                        follow_clear_bar(f);
                        const json_t *w = json_object_get(job, "wait");
                        if (moving)
                                fprintf(stderr, "%s (%s)\n", state, format_size(total, bt));
                        else if (job_waiting(job) && json_is_object(w))
                                fprintf(stderr, "%s (up to %s)\n", state,
                                        format_duration(total, (uint64_t)(json_number_value(json_object_get(
                                                                                  w, "timeout_sec")) +
                                                                          0.5)));
                        else if (!job_final(job))
                                fprintf(stderr, "%s\n", state);
                        snprintf(f->last_line, sizeof(f->last_line), "%s", line);
                }
        }
        json_decref(f->last);
        f->last = json_incref((json_t *)job);
        f->last_message = output_json_str(f->last, "message");
        if (!f->bar_shown)
                follow_show_wait(f, job);
}

static int follow_on_notify(RpcClient *c, const char *method, json_t *params, void *userdata)
{
        Follow *f = userdata;
        json_t *job = json_array_get(params, 0);

        if (!method || !streq(method, "notify_job_update") || !json_is_object(job))
                return 0;
        if ((uint64_t)json_integer_value(json_object_get(job, "id")) != f->id)
                return 0;
        follow_show(f, job);
        return job_final(job) ? 1 : 0;
}

/* After a job that did not end well: its id, and what to run next. */
static void follow_next_command(Follow *f, const json_t *job)
{
        const char *err = job_error_name(job), *port = output_json_str(job, "port");

        if (f->target && f->image && port &&
            (!err || streq(err, "device-gone") || streq(err, "bootloader-timeout") ||
             streq(err, "interrupted") || streq(err, "flash-failed") || streq(err, "verify-failed")))
                fprintf(stderr,
                        "Next: `flashctl flash %s %s` to try again (job %" PRIu64
                        " has the log: `flashctl job %" PRIu64 "`).\n",
                        port, f->image, f->id, f->id);
        else
                fprintf(stderr, "Next: `flashctl job %" PRIu64 "` shows its log.\n", f->id);
}

static void print_final(Follow *f, const json_t *job)
{
        const char *state = output_json_str(job, "state");
        const json_t *error = json_object_get(job, "error");
        bool color = f->ctx->use_color;

        follow_clear_bar(f);
        if (f->ctx->json)
                return;
        char who[160], took[FORMAT_BUF_MAX];
        job_board_text(job, who, sizeof(who));
        format_seconds(took, job_duration(job));
        if (state && streq(state, "done")) {
                _cleanup_free_ char *what = result_summary(job);
                if (what)
                        printf("%sDone%s in %s: %s.\n", output_color_on(OUTPUT_COLOR_GREEN, color),
                               output_color_off(color), took, what);
                else if (json_is_object(json_object_get(job, "result")))
                        printf("%sAlready up to date%s: nothing written, %s.\n",
                               output_color_on(OUTPUT_COLOR_GREEN, color), output_color_off(color), took);
                else
                        printf("%sDone%s in %s.\n", output_color_on(OUTPUT_COLOR_GREEN, color),
                               output_color_off(color), took);
                if (!output_json_str(job, "board"))
                        who[0] = (char)toupper((unsigned char)who[0]); /* "The board on ..." */
                printf("%s is running the new image", who);
                if (output_json_str(job, "device"))
                        printf(" (%s)", output_json_str(job, "device"));
                printf(".\n");
                return;
        }
        if (state && streq(state, "superseded")) {
                fprintf(stderr,
                        "Job %" PRIu64 " superseded by job %" PRIu64
                        " (a newer flash of the same board); not retried\n",
                        f->id, u64_field(job, "superseded_by"));
                return;
        }
        if (state && streq(state, "cancelled")) {
                fprintf(stderr, "Job %" PRIu64 " cancelled", f->id);
                if (output_json_str(job, "message")) {
                        fputs(": ", stderr);
                        output_fputs_sanitized(output_json_str(job, "message"), stderr);
                }
                fputc('\n', stderr);
                follow_next_command(f, job);
                return;
        }
        fprintf(stderr, "flashctl: job %" PRIu64 " %sfailed%s (%s): ", f->id,
                output_color_on(OUTPUT_COLOR_RED, color), output_color_off(color),
                strna(output_json_str(error, "name")));
        output_fputs_sanitized(strna(output_json_str(error, "message")), stderr);
        fputc('\n', stderr);
        if (output_json_str(error, "advice")) {
                fputs("Hint: ", stderr);
                output_fputs_sanitized(output_json_str(error, "advice"), stderr);
                fputc('\n', stderr);
        }
        follow_next_command(f, job);
}

static int job_get(Flashctl *ctx, uint64_t id, json_t **ret)
{
        json_auto_t *params = json_pack("{s:I}", "job", (json_int_t)id);
        json_auto_t *result = NULL;
        int r = flashctl_call(ctx, "job.get", params, &result, NULL);

        if (r != 0)
                return r;
        *ret = json_incref(json_object_get(result, "job"));
        return *ret ? 0 : flashctl_report_error(ctx, -EBADMSG, "job.get");
}

/* Follow job `id` until it ends. With `cancel`, SIGINT/SIGTERM cancel it
 * (a second one stops following); without (a job started elsewhere), they
 * stop following and the job goes on. `target` and `image` name the next
 * command after a failure (NULL: not known here). Returns the exit status. */
static int follow_job(Flashctl *ctx, uint64_t id, const json_t *initial, bool cancel, const char *target,
                      const char *image)
{
        Follow f = { .ctx = ctx,
                     .id = id,
                     .tty = output_use_color(stderr) || isatty(STDERR_FILENO) == 1,
                     .target = target,
                     .image = image };
        json_auto_t *now = NULL;
        sigset_t mask;
        bool cancelling = false;
        int r, ret;

        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return flashctl_report_error(ctx, negative_errno(), "flash");
        _cleanup_close_ int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
        if (sfd < 0)
                return flashctl_report_error(ctx, negative_errno(), "flash");

        rpc_client_set_notify(ctx->client, follow_on_notify, &f);
        if (initial)
                follow_show(&f, initial);
        /* Notifications that came before the answer may be queued already;
         * job.get covers an end we may have missed. */
        r = job_get(ctx, id, &now);
        if (r != 0)
                return r;
        if (job_final(now)) {
                follow_show(&f, now);
                goto end;
        }
        for (;;) {
                /* a terminal's waiting line counts the seconds: wake once a
                 * second (the job may start waiting during any run) */
                bool tty = f.tty && !ctx->json;
                r = rpc_client_run(ctx->client, tty ? 1000000 : UINT64_MAX, sfd);
                if (r > 0)
                        break;
                if (r == 0 && tty) {
                        if (f.last && job_waiting(f.last))
                                follow_show_wait(&f, f.last);
                        continue;
                }
                if (r == -EINTR) {
                        struct signalfd_siginfo si;
                        json_auto_t *params = json_pack("{s:I}", "job", (json_int_t)id);
                        (void)!read(sfd, &si, sizeof(si));
                        if (cancelling || !cancel) {
                                follow_clear_bar(&f);
                                fprintf(stderr,
                                        "stopped following job %" PRIu64
                                        "; it goes on\nNext: `flashctl job %" PRIu64 " --follow`.\n",
                                        id, id);
                                json_decref(f.last);
                                return cancel ? FLASHCTL_EXIT_CANCELLED : FLASHCTL_EXIT_OK;
                        }
                        follow_clear_bar(&f);
                        fprintf(stderr, "cancelling job %" PRIu64 " (interrupt again to stop waiting)...\n",
                                id);
                        cancelling = true;
                        (void)flashctl_call(ctx, "job.cancel", params, NULL, NULL);
                        continue;
                }
                if (r < 0) {
                        follow_clear_bar(&f);
                        json_decref(f.last);
                        if (r == -ECONNRESET || r == -EPIPE)
                                fprintf(stderr,
                                        "lost flashd while following job %" PRIu64
                                        "; once it runs again, `flashctl job %" PRIu64
                                        " --follow` shows how the job ended\n",
                                        id, id);
                        return flashctl_report_error(ctx, r, "flash");
                }
        }
end:
        /* The final object with its log. */
        json_decref(now);
        now = NULL;
        if (job_get(ctx, id, &now) != 0)
                now = json_incref(f.last);
        print_final(&f, now);
        ret = exit_for_job(now);
        json_decref(f.last);
        return ret;
}

/* ---- flash ---- */

typedef struct FlashOptions {
        json_t *force;
        const char *format, *board;
        bool has_address, verify, mass_erase, wait;
        uint32_t address;
} FlashOptions;

static int flash_one(Flashctl *ctx, const char *target, const char *path, const FlashOptions *o)
{
        json_t *force = o->force;
        const char *format = o->format, *board = o->board;
        bool has_address = o->has_address, verify = o->verify, mass_erase = o->mass_erase, wait = o->wait;
        uint32_t address = o->address;
        json_auto_t *params = NULL, *result = NULL;
        RpcClientError e = {};
        struct stat st;
        int r;

        /* An image that cannot be used is the same failure wherever it is
         * found (here, or in the daemon): exit status 5. */
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                fprintf(stderr, "flashctl: cannot open the image %s: %m\n", path);
                return FLASHCTL_EXIT_REFUSED;
        }
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                fprintf(stderr, "flashctl: the image %s is not a regular file\n", path);
                return FLASHCTL_EXIT_REFUSED;
        }

        _cleanup_free_ char *pathcopy = strdup(path);
        params = json_pack("{s:s, s:{s:b, s:s}, s:b, s:b, s:O}", "target", target, "image", "fd", 1, "name",
                           pathcopy ? basename(pathcopy) : path, "verify", verify, "mass_erase", mass_erase,
                           "force", force);
        if (!params)
                return flashctl_report_error(ctx, -ENOMEM, "flash");
        if (has_address)
                json_object_set_new(params, "address", json_integer(address));
        if (format)
                json_object_set_new(params, "format", json_string(format));
        if (board)
                json_object_set_new(params, "board", json_string(board));

        r = flashctl_connect(ctx);
        if (r != 0)
                return r;
        if (wait) {
                /* Ctrl-C from here on cancels the job it makes (follow_job reads
                 * the signal), never kills flashctl between submission and
                 * following, leaving a job nobody was told about. */
                sigset_t mask;
                sigemptyset(&mask);
                sigaddset(&mask, SIGINT);
                sigaddset(&mask, SIGTERM);
                (void)sigprocmask(SIG_BLOCK, &mask, NULL);
        }
        r = rpc_client_call_with_fd(ctx->client, "job.flash", params, fd, 0, &result, &e);
        if (r == -EREMOTEIO) {
                const json_t *err = json_object_get(e.data, "error");
                const json_t *limit = json_object_get(e.data, "limit");
                int status = rpc_error_from_code((int)e.code) == RPC_ERROR_REFUSED
                                     ? FLASHCTL_EXIT_REFUSED
                                     : exit_for_error(output_json_str(err, "name"));
                if (json_is_integer(limit)) {
                        /* the file did not even reach the daemon's checks */
                        char have[FORMAT_BUF_MAX], max[FORMAT_BUF_MAX], flash[FORMAT_BUF_MAX];
                        uint64_t flash_size = target_flash_size(ctx, target);
                        flashctl_record_daemon_error(&e);
                        fprintf(stderr, "flashctl: the image %s is %s; flashd accepts at most %s\n", path,
                                format_size(have, (uint64_t)st.st_size),
                                format_size(max, (uint64_t)json_integer_value(limit)));
                        if (flash_size > 0)
                                fprintf(stderr,
                                        "Hint: A firmware image is smaller than the flash it goes to (%s on "
                                        "%s): check that this is the right file.\n",
                                        format_size(flash, flash_size), target);
                        else
                                fprintf(stderr, "Hint: A firmware image is smaller than the flash it goes "
                                                "to: check that this is the right file.\n");
                        status = FLASHCTL_EXIT_REFUSED;
                } else {
                        flashctl_print_daemon_error(&e);
                        if (output_json_str(err, "advice"))
                                fprintf(stderr, "Hint: %s\n", output_json_str(err, "advice"));
                        /* invalid params that are not about the image are a daemon error */
                        if (!err)
                                status = FLASHCTL_EXIT_DAEMON_ERROR;
                }
                rpc_client_error_done(&e);
                return status;
        }
        if (r < 0)
                return flashctl_report_error(ctx, r, "job.flash");

        const json_t *job = json_object_get(result, "job");
        uint64_t id = (uint64_t)json_integer_value(json_object_get(job, "id"));
        if (!json_is_object(job) || id == 0)
                return flashctl_report_error(ctx, -EBADMSG, "job.flash");

        if (!wait) {
                if (ctx->json)
                        return flashctl_print_json_exit(ctx, job);
                printf("%" PRIu64 "\n", id);
                return FLASHCTL_EXIT_OK;
        }
        if (!ctx->json) {
                char a[FORMAT_BUF_MAX], sz[FORMAT_BUF_MAX], who[160];
                const json_t *img = json_object_get(job, "image");
                /* the bytes going into flash, not the file's (a .hex file is ~2.7x larger) */
                uint64_t size = u64_field(img, "payload_size") ?: u64_field(img, "size");
                job_board_text(job, who, sizeof(who));
                fprintf(stderr, "Job %" PRIu64 ": %s (%s, %s at %s) onto %s\n", id, path,
                        strna(output_json_str(img, "format")), format_size(sz, size),
                        format_address(a, u64_field(img, "address")), who);
        }
        return follow_job(ctx, id, job, true, target, path);
}

/* Whether `target` names a USB-to-CAN bridge board in device.list: its port
 * or id, or IFACE:UUID with the bridge's own UUID. */
static bool target_is_bridge(const json_t *devices, const char *target)
{
        const char *colon = strchr(target, ':');
        size_t i;
        json_t *d;

        json_array_foreach (devices, i, d) {
                const json_t *b = json_object_get(d, "bridge");
                if (!json_is_object(b))
                        continue;
                if (streq_ptr(output_json_str(d, "port"), target) ||
                    streq_ptr(output_json_str(d, "id"), target))
                        return true;
                if (colon && output_json_str(b, "uuid") &&
                    strcasecmp(colon + 1, output_json_str(b, "uuid")) == 0)
                        return true;
        }
        return false;
}

/* Several TARGET IMAGE pairs: one job after the other, the USB-to-CAN
 * bridge boards last (the nodes behind a bridge are unreachable while it
 * is in its bootloader), stopping at the first failure. */
static int flash_several(Flashctl *ctx, char **pairs, size_t n, const FlashOptions *o)
{
        json_auto_t *devices = NULL;
        size_t *order = calloc(n, sizeof(size_t)), k = 0;
        int r;

        if (!order)
                return flashctl_report_error(ctx, -ENOMEM, "flash");
        r = flashctl_connect(ctx);
        if (r == 0)
                r = flashctl_call(ctx, "device.list", NULL, &devices, NULL);
        if (r != 0) {
                free(order);
                return r;
        }
        for (int last = 0; last <= 1; last++)
                for (size_t i = 0; i < n; i++)
                        if (target_is_bridge(devices, pairs[2 * i]) == (bool)last)
                                order[k++] = i;
        for (k = 0; k < n; k++) {
                const char *target = pairs[2 * order[k]], *path = pairs[2 * order[k] + 1];
                if (!ctx->json)
                        fprintf(stderr, "flashctl: %zu/%zu: %s%s\n", k + 1, n, target,
                                target_is_bridge(devices, target) ? " (USB-to-CAN bridge: after the nodes)"
                                                                  : "");
                r = flash_one(ctx, target, path, o);
                if (r != FLASHCTL_EXIT_OK) {
                        for (size_t rest = k + 1; rest < n; rest++)
                                fprintf(stderr, "flashctl: %s not flashed: an earlier target failed\n",
                                        pairs[2 * order[rest]]);
                        break;
                }
        }
        free(order);
        return r;
}

static int verb_flash(Flashctl *ctx, int argc, char **argv)
{
        enum { ARG_NO_VERIFY = 0x100, ARG_MASS_ERASE, ARG_NO_WAIT, ARG_FORMAT, ARG_BOARD };
        static const struct option options[] = {
                { "address", required_argument, NULL, 'a' },
                { "no-verify", no_argument, NULL, ARG_NO_VERIFY },
                { "force", required_argument, NULL, 'f' },
                { "mass-erase", no_argument, NULL, ARG_MASS_ERASE },
                { "no-wait", no_argument, NULL, ARG_NO_WAIT },
                { "format", required_argument, NULL, ARG_FORMAT },
                { "board", required_argument, NULL, ARG_BOARD },
                {},
        };
        json_auto_t *force = json_array();
        const char *format = NULL, *board = NULL;
        bool has_address = false, verify = true, mass_erase = false, wait = true;
        uint32_t address = 0;
        int c;

        while ((c = getopt_long(argc, argv, "a:f:", options, NULL)) >= 0)
                switch (c) {
                case 'a':
                        if (flashctl_parse_u32(optarg, &address) < 0)
                                return flashctl_usage_error(argv[0], "bad address '%s' (e.g. 0x08008000)",
                                                            optarg);
                        has_address = true;
                        break;
                case ARG_NO_VERIFY:
                        verify = false;
                        break;
                case 'f':
                        json_array_append_new(force, json_string(optarg));
                        break;
                case ARG_MASS_ERASE:
                        mass_erase = true;
                        break;
                case ARG_NO_WAIT:
                        wait = false;
                        break;
                case ARG_FORMAT:
                        format = optarg;
                        break;
                case ARG_BOARD:
                        board = optarg;
                        break;
                default:
                        return FLASHCTL_EXIT_USAGE;
                }
        int n = argc - optind;
        if (n < 2 || n % 2 != 0)
                return flashctl_usage_error(argv[0], "'flash' needs a TARGET and an IMAGE file (or several "
                                                     "TARGET IMAGE pairs)");
        FlashOptions o = { .force = force,
                           .format = format,
                           .board = board,
                           .has_address = has_address,
                           .verify = verify,
                           .mass_erase = mass_erase,
                           .wait = wait,
                           .address = address };
        if (n == 2)
                return flash_one(ctx, argv[optind], argv[optind + 1], &o);
        if (!wait || has_address || board)
                return flashctl_usage_error(argv[0], "--no-wait, --address and --board take one TARGET");
        return flash_several(ctx, argv + optind, (size_t)n / 2, &o);
}

/* ---- jobs, job, cancel ---- */

static int parse_job_id(const char *verb, const char *s, uint64_t *ret)
{
        char *end = NULL;
        unsigned long long v;

        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno != 0 || !end || end == s || *end != '\0' || v == 0)
                return flashctl_usage_error(verb, "'%s' is not a job id (see flashctl jobs)", s);
        *ret = v;
        return 0;
}

static int verb_jobs(Flashctl *ctx, int argc, char **argv)
{
        static const struct option options[] = { { "all", no_argument, NULL, 'a' }, {} };
        static const char *const headers[] = { "ID",   "STATE", "PROGRESS", "BOARD",
                                               "PORT", "IMAGE", "SOURCE",   "CREATED" };
        bool all = false;
        Table *t = NULL;
        int c, r;

        while ((c = getopt_long(argc, argv, "a", options, NULL)) >= 0)
                switch (c) {
                case 'a':
                        all = true;
                        break;
                default:
                        return FLASHCTL_EXIT_USAGE;
                }
        if (optind < argc)
                return flashctl_usage_error(argv[0], "'jobs' takes no arguments");

        json_auto_t *params = json_pack("{s:b}", "all", all);
        json_auto_t *result = NULL;
        const json_t *jobs = NULL;
        r = flashctl_call_list(ctx, "job.list", params, "jobs", &result, &jobs);
        if (r != FLASHCTL_LIST_TABLE)
                return r;

        r = table_new(&t, ELEMENTSOF(headers), headers);
        if (r < 0)
                return flashctl_report_error(ctx, r, "jobs");
        size_t i;
        json_t *j;
        json_array_foreach (jobs, i, j) {
                char id[24], state[64], progress[48] = "-", created[32] = "-", image[48];
                const json_t *img = json_object_get(j, "image");
                uint64_t bt = u64_field(j, "bytes_total"), bd = u64_field(j, "bytes_done");
                double cr = json_number_value(json_object_get(j, "created"));

                snprintf(id, sizeof(id), "%" PRIu64, (uint64_t)json_integer_value(json_object_get(j, "id")));
                job_state_text(j, state, sizeof(state));
                /* progress while it runs, what it wrote once done; a failure is
                 * the STATE's (`flashctl job ID` tells why) */
                if (bt > 0 && output_json_str(j, "phase") && !streq(output_json_str(j, "phase"), "none"))
                        snprintf(progress, sizeof(progress), "%u%%", (unsigned)(100 * MIN(bd, bt) / bt));
                else if (streq_ptr(output_json_str(j, "state"), "done")) {
                        const json_t *res = json_object_get(j, "result");
                        char sz[FORMAT_BUF_MAX];
                        if (u64_field(res, "bytes_written") > 0)
                                snprintf(progress, sizeof(progress), "%s written",
                                         format_size(sz, u64_field(res, "bytes_written")));
                        else if (json_is_object(res))
                                snprintf(progress, sizeof(progress), "up to date");
                }
                if (cr > 0) {
                        time_t tt = (time_t)cr;
                        struct tm tm;
                        strftime(created, sizeof(created), "%Y-%m-%d %H:%M:%S", localtime_r(&tt, &tm));
                }
                /* the file's name as a person gave it; the hash only without one */
                if (output_json_str(img, "name"))
                        snprintf(image, sizeof(image), "%s", output_json_str(img, "name"));
                else
                        snprintf(image, sizeof(image), "%.12s", strempty(output_json_str(img, "sha256")));
                const char *cells[] = { id,
                                        state,
                                        progress,
                                        output_json_str(j, "board"),
                                        output_json_str(j, "port"),
                                        image,
                                        output_json_str(j, "source"),
                                        created };
                r = table_add_row(t, cells);
                if (r < 0)
                        break;
                table_set_last_row_color(t, 1, state_color(output_json_str(j, "state")));
        }
        if (r >= 0)
                r = table_print(t, stdout, output_terminal_width(stdout), ctx->use_color, ctx->legend);
        table_free(t);
        if (r < 0)
                return flashctl_report_error(ctx, r, "jobs");
        if (ctx->legend && json_array_size(jobs) == 0)
                printf("No %sjobs.%s\n", all ? "" : "queued or running ",
                       all ? "" : " (--all shows the history)");
        return FLASHCTL_EXIT_OK;
}

/* The job object for a person: one line per fact, the error once with its
 * hint, what the flash did instead of the last phase's counters. */
static json_t *job_for_person(const json_t *job)
{
        json_t *shown = json_deep_copy(job);
        const json_t *img = json_object_get(job, "image"), *error = json_object_get(job, "error");
        const json_t *req = json_object_get(job, "requested_by");
        char a[FORMAT_BUF_MAX], sz[FORMAT_BUF_MAX], text[512];
        static const char *const times[] = { "created", "started", "finished" };

        if (!shown)
                return NULL;
        if (streq_ptr(output_json_str(job, "phase"), "none"))
                json_object_del(shown, "phase");
        if (json_is_object(img)) {
                /* a refused image was never placed: no format or address then */
                const char *name =
                        output_json_str(img, "name") ? output_json_str(img, "name") : "(no file name)";
                if (output_json_str(img, "format"))
                        snprintf(text, sizeof(text), "%s (%s, %s at %s, sha256 %.12s)", name,
                                 output_json_str(img, "format"), format_size(sz, u64_field(img, "size")),
                                 format_address(a, u64_field(img, "address")),
                                 strempty(output_json_str(img, "sha256")));
                else
                        snprintf(text, sizeof(text), "%s (%s, sha256 %.12s)", name,
                                 format_size(sz, u64_field(img, "size")),
                                 strempty(output_json_str(img, "sha256")));
                json_object_set_new(shown, "image", json_string(text));
        }
        if (job_final(job) || streq_ptr(output_json_str(job, "state"), "queued")) {
                json_object_del(shown, "bytes_done");
                json_object_del(shown, "bytes_total");
                json_object_del(shown, "rate");
        }
        json_object_del(shown, "result");
        if (streq_ptr(output_json_str(job, "state"), "done")) {
                _cleanup_free_ char *what = result_summary(job);
                if (what || json_is_object(json_object_get(job, "result")))
                        json_object_set_new(shown, "written",
                                            json_string(what ? what : "nothing (up to date)"));
        }
        json_object_del(shown, "wait");
        if (wait_text(job, text, sizeof(text)))
                json_object_set_new(shown, "waiting", json_string(text));
        if (json_is_object(error)) {
                if (streq_ptr(output_json_str(job, "message"), output_json_str(error, "message")))
                        json_object_del(shown, "message");
                snprintf(text, sizeof(text), "%s: %s", strna(output_json_str(error, "name")),
                         strna(output_json_str(error, "message")));
                json_object_set_new(shown, "error", json_string(text));
                if (output_json_str(error, "advice"))
                        json_object_set_new(shown, "hint", json_string(output_json_str(error, "advice")));
        }
        if (json_is_object(req)) {
                snprintf(text, sizeof(text),
                         "%s (uid %" JSON_INTEGER_FORMAT ", pid %" JSON_INTEGER_FORMAT ")",
                         strna(output_json_str(req, "name")),
                         json_integer_value(json_object_get(req, "uid")),
                         json_integer_value(json_object_get(req, "pid")));
                json_object_set_new(shown, "requested_by", json_string(text));
        }
        for (size_t i = 0; i < ELEMENTSOF(times); i++) {
                double t = json_number_value(json_object_get(shown, times[i]));
                char buf[32];
                time_t tt = (time_t)t;
                struct tm tm;
                if (t <= 0)
                        continue;
                strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", localtime_r(&tt, &tm));
                json_object_set_new(shown, times[i], json_string(buf));
        }
        if (job_duration(job) >= 0)
                json_object_set_new(shown, "took", json_string(format_seconds(a, job_duration(job))));

        /* the added facts next to the ones they explain */
        static const struct {
                const char *after, *key;
        } order[] = {
                { "state", "written" }, { "state", "waiting" }, { "error", "hint" }, { "finished", "took" }
        };
        json_t *sorted = json_object();
        const char *key;
        json_t *v;
        if (!sorted)
                return shown;
        json_object_foreach (shown, key, v) {
                bool moved = false;
                for (size_t i = 0; i < ELEMENTSOF(order); i++)
                        moved = moved || streq(key, order[i].key);
                if (moved)
                        continue;
                json_object_set(sorted, key, v);
                for (size_t i = 0; i < ELEMENTSOF(order); i++)
                        if (streq(key, order[i].after) && json_object_get(shown, order[i].key))
                                json_object_set(sorted, order[i].key, json_object_get(shown, order[i].key));
        }
        json_decref(shown);
        return sorted;
}

static int verb_job(Flashctl *ctx, int argc, char **argv)
{
        static const struct option options[] = { { "follow", no_argument, NULL, 'f' }, {} };
        static const char *const skip[] = { "log", NULL };
        json_auto_t *job = NULL;
        bool follow = false;
        uint64_t id;
        int c, r;

        while ((c = getopt_long(argc, argv, "f", options, NULL)) >= 0)
                switch (c) {
                case 'f':
                        follow = true;
                        break;
                default:
                        return FLASHCTL_EXIT_USAGE;
                }
        if (argc - optind != 1)
                return flashctl_usage_error(argv[0], "'job' needs exactly one job ID");
        r = parse_job_id(argv[0], argv[optind], &id);
        if (r != 0)
                return r;
        r = job_get(ctx, id, &job);
        if (r != 0)
                return r;
        if (follow) {
                /* a job started elsewhere (another terminal, a rule, a frontend) */
                if (!ctx->json) {
                        const json_t *img = json_object_get(job, "image");
                        char who[160];
                        job_board_text(job, who, sizeof(who));
                        fprintf(stderr,
                                "Job %" PRIu64 ": %s onto %s (Ctrl-C stops following; the job goes on)\n",
                                id,
                                output_json_str(img, "name") ? output_json_str(img, "name")
                                                             : strempty(output_json_str(img, "sha256")),
                                who);
                }
                return follow_job(ctx, id, job, false, NULL, NULL);
        }
        if (ctx->json)
                return flashctl_print_json_exit(ctx, job);
        {
                json_auto_t *shown = job_for_person(job);
                if (!shown)
                        return flashctl_report_error(ctx, -ENOMEM, "job");
                output_print_fields(stdout, shown, skip, 0, 0);
        }
        const json_t *log = json_object_get(job, "log");
        if (json_array_size(log) > 0) {
                size_t i;
                json_t *l;
                printf("\nLog:\n");
                json_array_foreach (log, i, l) {
                        fputs("  ", stdout);
                        output_fputs_sanitized(strempty(json_string_value(l)), stdout);
                        fputc('\n', stdout);
                }
        }
        return FLASHCTL_EXIT_OK;
}

static int verb_cancel(Flashctl *ctx, int argc, char **argv)
{
        static const struct option options[] = { {} };
        json_auto_t *params = NULL, *result = NULL;
        uint64_t id;
        int c, r;

        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                return FLASHCTL_EXIT_USAGE;
        if (argc - optind != 1)
                return flashctl_usage_error(argv[0], "'cancel' needs exactly one job ID");
        r = parse_job_id(argv[0], argv[optind], &id);
        if (r != 0)
                return r;
        params = json_pack("{s:I}", "job", (json_int_t)id);
        r = flashctl_call(ctx, "job.cancel", params, &result, NULL);
        if (r != 0)
                return r;
        if (ctx->json)
                return flashctl_print_json_exit(ctx, json_object_get(result, "job"));
        printf("Job %" PRIu64 ": %s\n", id, strna(output_json_str(json_object_get(result, "job"), "state")));
        return FLASHCTL_EXIT_OK;
}

/* `flashctl watch`: "job 7     flashing/write 45% octopus-pro 1-1.3" */
static char *format_job_event(const char *method, json_t *params, bool use_color)
{
        const json_t *j = json_array_get(params, 0);
        uint64_t bt = u64_field(j, "bytes_total"), bd = u64_field(j, "bytes_done");
        const char *state = output_json_str(j, "state");
        char st[64], progress[32] = "";
        char *s = NULL;

        job_state_text(j, st, sizeof(st));
        if (bt > 0 && output_json_str(j, "phase") && !streq(output_json_str(j, "phase"), "none"))
                snprintf(progress, sizeof(progress), " %u%%", (unsigned)(100 * MIN(bd, bt) / bt));
        if (asprintf(&s, "job %-4" PRIu64 " %s%s%s%s %s %s%s%s",
                     (uint64_t)json_integer_value(json_object_get(j, "id")),
                     output_color_on(state_color(state), use_color), st, output_color_off(use_color),
                     progress, output_json_str(j, "board") ? output_json_str(j, "board") : "-",
                     strna(output_json_str(j, "port")), job_error_name(j) ? " " : "",
                     strempty(job_error_name(j))) < 0)
                return NULL;
        return s;
}

static const EventPrinter job_events[] = {
        { "notify_job_update", format_job_event },
        {},
};

static const Verb job_verbs[] = {
        {
                .name = "flash",
                .args = "TARGET IMAGE [TARGET IMAGE]...",
                .summary = "Flash an image onto a board and wait until it runs it",
                .help = "TARGET is a board name (octopus-pro; octopus-pro/f429 picks one of the boards\n"
                        "a device could be), a port path (1-1.3), a tty, a /dev/serial/by-id path or a\n"
                        "device id from `flashctl list`, or a CAN node can0:UUID. Several TARGET IMAGE\n"
                        "pairs are flashed one after the other, USB-to-CAN bridge boards last.\n"
                        "IMAGE is a raw .bin\n"
                        "(written at the board's application start unless --address), an Intel HEX or a\n"
                        "DfuSe .dfu file; it is passed to the daemon as an open file descriptor.\n"
                        "\n"
                        "A board running Klipper is rebooted into its bootloader, flashed, verified and\n"
                        "waited for until it runs the new image. Ctrl-C cancels the job.\n"
                        "\n"
                        "Options:\n"
                        "  -a --address=ADDR      Where a raw image goes (default: the board's application\n"
                        "                         start); an explicit address may overwrite a bootloader\n"
                        "     --no-verify         Do not read the flash back to compare\n"
                        "  -f --force=CHECK       Override one safety check: fit, vector-table,\n"
                        "                         bootloader-region, mcu (repeatable; logged)\n"
                        "     --mass-erase        Erase the whole flash first\n"
                        "     --format=FMT        bin, hex or dfu (default: detected)\n"
                        "     --board=NAME        The board behind an unidentified device (an AVR behind\n"
                        "                         a CH340 or FTDI USB-serial bridge: --board mega2560)\n"
                        "     --no-wait           Print the job id and return at once\n"
                        "\n"
                        "Progress: a bar on a terminal, one line per state otherwise; with --json one\n"
                        "JSON object per line ({\"time\", \"job\"}).\n"
                        "Exit status: 0 the board runs the new image; 1 no such board or another\n"
                        "daemon error; 5 refused before anything was done to the board (a safety\n"
                        "check, an unreadable image, its serial port in use); 6 the flash failed;\n"
                        "7 cancelled; 8 the board did not show up in its bootloader or did not come\n"
                        "back in time.\n",
                .run = verb_flash,
        },
        {
                .name = "jobs",
                .summary = "List queued and running flash jobs (--all: the history too)",
                .help = "Options:\n"
                        "  -a --all               Include finished jobs\n",
                .run = verb_jobs,
        },
        {
                .name = "job",
                .args = "ID",
                .summary = "Show one flash job with its log",
                .help = "Options:\n"
                        "  -f --follow            Follow the job until it ends, as `flash` does (a job\n"
                        "                         started elsewhere); Ctrl-C stops following, the job\n"
                        "                         goes on. Exit status as for `flash`.\n",
                .run = verb_job,
        },
        {
                .name = "cancel",
                .args = "ID",
                .summary = "Cancel a flash job",
                .help = "A queued job is cancelled at once, a running one at the next block or wait;\n"
                        "a board cancelled during the flash stays in its bootloader.\n",
                .run = verb_cancel,
        },
        {},
};

const CommandGroup command_group_job = {
        .name = "job",
        .verbs = job_verbs,
        .events = job_events,
};
