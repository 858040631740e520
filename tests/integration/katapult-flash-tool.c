/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A small driver for the serial side, used by the katapult-*.py and
 * serial-*.py integration tests under vboard. Prints one JSON object.
 *
 *   katapult-flash-tool request-usb TTY
 *   katapult-flash-tool request-uart TTY [BAUD]
 *   katapult-flash-tool holder TTY
 *   katapult-flash-tool connect TTY
 *   katapult-flash-tool flash TTY IMAGE [--mcu MCU] [--address ADDR] [--force-mcu]
 *                        [--force-address] [--no-verify] [--no-complete] [--quick-retries]
 *
 * Exit status 0 when the operation succeeded, 1 when it failed (the JSON
 * says how), 2 on usage errors.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/macros.h"
#include "serial/bootloader-request.h"
#include "serial/katapult-session.h"
#include "serial/serial-port.h"

static json_t *phases;
static uint64_t progress_calls;

static void on_phase(void *userdata, FlashPhase p)
{
        json_array_append_new(phases, json_string(flash_phase_to_string(p)));
}

static void on_progress(void *userdata, uint64_t done, uint64_t total)
{
        progress_calls++;
}

static void on_note(void *userdata, const char *text)
{
        json_array_append_new((json_t *)userdata, json_string(text));
}

static int emit(json_t *o, int r)
{
        json_object_set_new(o, "result", json_integer(r));
        if (r < 0) {
                char name[32];
                /* errno names for the test to compare: ENODEV, EILSEQ, ... */
                static const struct {
                        int e;
                        const char *n;
                } names[] = {
                        { ENODEV, "ENODEV" },
                        { ETIMEDOUT, "ETIMEDOUT" },
                        { EADDRNOTAVAIL, "EADDRNOTAVAIL" },
                        { EMEDIUMTYPE, "EMEDIUMTYPE" },
                        { EILSEQ, "EILSEQ" },
                        { EIO, "EIO" },
                        { ENOENT, "ENOENT" },
                        { EPROTO, "EPROTO" },
                        { ECANCELED, "ECANCELED" },
                        { EFBIG, "EFBIG" },
                        { EINVAL, "EINVAL" },
                        { ENOTTY, "ENOTTY" },
                };
                snprintf(name, sizeof(name), "%d", -r);
                for (size_t i = 0; i < ELEMENTSOF(names); i++)
                        if (names[i].e == -r)
                                snprintf(name, sizeof(name), "%s", names[i].n);
                json_object_set_new(o, "error", json_string(name));
        }
        char *s = json_dumps(o, JSON_COMPACT);
        puts(s);
        free(s);
        json_decref(o);
        return r < 0 ? 1 : 0;
}

static json_t *info_json(const KatapultConnectInfo *i)
{
        char v[16];
        return json_pack("{s:s,s:I,s:I,s:s,s:s}", "proto_version",
                         katapult_proto_version_format(i->proto_version, v, sizeof(v)), "start_address",
                         (json_int_t)i->start_address, "block_size", (json_int_t)i->block_size, "mcu",
                         i->mcu, "software_version", i->software_version);
}

static int read_file(const char *path, uint8_t **ret, size_t *ret_size)
{
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0)
                return -errno;
        uint8_t *b = malloc((size_t)st.st_size + 1);
        if (!b)
                return -ENOMEM;
        ssize_t n = read(fd, b, (size_t)st.st_size);
        if (n != st.st_size) {
                free(b);
                return -EIO;
        }
        *ret = b;
        *ret_size = (size_t)n;
        return 0;
}

static int cmd_flash(int argc, char **argv, bool connect_only)
{
        _cleanup_(serial_port_freep) SerialPort *port = NULL;
        _cleanup_(katapult_session_freep) KatapultSession *s = NULL;
        _cleanup_free_ uint8_t *image = NULL;
        _cleanup_free_ char *msg = NULL;
        KatapultFlashOptions opts = {};
        size_t size = 0;
        bool quick = false;
        json_t *o = json_object(), *notes = json_array();
        int r;

        phases = json_array();
        json_object_set_new(o, "phases", phases);
        json_object_set_new(o, "notes", notes);

        for (int i = connect_only ? 3 : 4; i < argc; i++) {
                if (streq(argv[i], "--mcu") && i + 1 < argc)
                        opts.image_mcu = argv[++i];
                else if (streq(argv[i], "--address") && i + 1 < argc)
                        opts.image_address = (uint32_t)strtoul(argv[++i], NULL, 0);
                else if (streq(argv[i], "--force-mcu"))
                        opts.force_mcu = true;
                else if (streq(argv[i], "--force-address"))
                        opts.force_address = true;
                else if (streq(argv[i], "--no-verify"))
                        opts.no_verify = true;
                else if (streq(argv[i], "--no-complete"))
                        opts.no_complete = true;
                else if (streq(argv[i], "--quick-retries"))
                        quick = true;
                else {
                        fprintf(stderr, "unknown option %s\n", argv[i]);
                        return 2;
                }
        }
        if (!connect_only) {
                r = read_file(argv[3], &image, &size);
                if (r < 0) {
                        json_object_set_new(o, "message", json_string("cannot read the image"));
                        return emit(o, r);
                }
        }

        /* USB CDC ignores the rate; a UART bootloader runs at 250000. */
        r = serial_port_open(&port, argv[2], 250000);
        if (r < 0) {
                json_object_set_new(o, "message", json_string("cannot open the tty"));
                return emit(o, r);
        }
        r = katapult_session_new(&s, serial_port_get_transport(port));
        if (r < 0)
                return emit(o, r);
        if (quick) {
                /* the virtual board answers in microseconds: keep retries short */
                KatapultTimeouts t = katapult_timeouts_default;
                t.retry_delay_usec = 5 * 1000;
                t.busy_delay_usec = 10 * 1000;
                t.quiet_usec = 30 * 1000;
                t.reply_usec = 300 * 1000;
                t.block_reply_usec = 500 * 1000;
                katapult_session_set_timeouts(s, &t);
        }
        FlashCallbacks cb = {
                .phase = on_phase, .progress = on_progress, .note = on_note, .userdata = notes
        };

        if (connect_only) {
                KatapultConnectInfo info;
                r = katapult_session_connect(s, &cb, &info, &msg);
                if (r >= 0)
                        json_object_set_new(o, "info", info_json(&info));
        } else {
                _cleanup_(flash_image_freep) FlashImage *img = NULL;
                r = flash_image_new(&img, FLASH_IMAGE_FORMAT_BIN);
                if (r >= 0)
                        r = flash_image_add(img, opts.image_address, image, size);
                if (r >= 0)
                        r = katapult_session_flash(s, img, &opts, &cb, &msg);
                const KatapultConnectInfo *info = katapult_session_get_info(s);
                if (info)
                        json_object_set_new(o, "info", info_json(info));
        }
        const KatapultFlashStats *st = katapult_session_get_stats(s);
        json_object_set_new(o, "stats",
                            json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "blocks_written",
                                      (json_int_t)st->blocks_written, "blocks_verified",
                                      (json_int_t)st->blocks_verified, "pages_written",
                                      (json_int_t)st->pages_written, "resends", (json_int_t)st->resends,
                                      "busies", (json_int_t)st->busies, "errors", (json_int_t)st->errors,
                                      "timeouts", (json_int_t)st->timeouts));
        json_object_set_new(o, "progress_calls", json_integer((json_int_t)progress_calls));
        json_object_set_new(o, "message", json_string(strempty(msg)));
        return emit(o, r);
}

int main(int argc, char **argv)
{
        if (argc < 3) {
                fprintf(stderr, "usage: %s request-usb|request-uart|holder|connect|flash TTY ...\n",
                        argv[0]);
                return 2;
        }
        const char *verb = argv[1], *tty = argv[2];

        if (streq(verb, "request-usb"))
                return emit(json_object(), bootloader_request_usb(tty));
        if (streq(verb, "request-uart"))
                return emit(
                        json_object(),
                        bootloader_request_uart(tty, argc > 3 ? (unsigned)strtoul(argv[3], NULL, 10) : 0));
        if (streq(verb, "holder")) {
                TtyHolder h;
                json_t *o = json_object();
                int r = tty_find_holder("/proc", tty, getpid(), &h);
                if (r > 0) {
                        _cleanup_free_ char *m = tty_holder_describe(&h, tty);
                        json_object_set_new(o, "pid", json_integer(h.pid));
                        json_object_set_new(o, "name", json_string(h.name));
                        json_object_set_new(o, "unit", json_string(h.unit));
                        json_object_set_new(o, "message", json_string(strempty(m)));
                }
                return emit(o, r);
        }
        if (streq(verb, "connect"))
                return cmd_flash(argc, argv, true);
        if (streq(verb, "flash") && argc >= 4)
                return cmd_flash(argc, argv, false);
        fprintf(stderr, "unknown verb %s\n", verb);
        return 2;
}
