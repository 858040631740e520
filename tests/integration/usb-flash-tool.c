/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Test driver for the DFU session (daemon/usb): opens a board by port path
 * and flashes a file or reads memory, printing one JSON object with the
 * result, the message, notes, phases and counters. The integration tests
 * check the virtual flash itself, not this tool's word.
 *
 *   usb-flash-tool [--port 1-1.1] flash FILE ADDRESS [--no-verify] [--mass-erase]
 *                  [--no-skip] [--leave[=ADDR]] [--set-address-per-chunk] [--layout STRING]
 *                  [--cancel-after BYTES]
 *   usb-flash-tool [--port 1-1.1] read ADDRESS LENGTH OUTFILE
 *   usb-flash-tool [--port 1-1.1] interrupt ADDRESS
 *
 * `interrupt` does what a flashd killed mid-write leaves behind: SET_ADDRESS,
 * one DNLOAD data block, and exit without the GETSTATUS that would let the
 * device finish (it stays in dfuDNLOAD-SYNC, then dfuDNBUSY).
 *
 * Exit status 0 when the session returned >= 0, 1 otherwise, 2 on usage errors.
 */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdatomic.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "util/macros.h"
#include "usb/dfu-session.h"

typedef struct Recorder {
        json_t *phases;
        json_t *phase_ms; /* milliseconds since the start at which each phase began */
        uint64_t start_ms;
        uint64_t last_done, last_total;
        /* --cancel-after=N: set the cancel flag once a phase reports N bytes
         * done in the write phase, as a job's cancel would */
        uint64_t cancel_after;
        bool writing;
        atomic_bool cancel;
} Recorder;

static uint64_t now_ms(void);

static void on_phase(void *userdata, FlashPhase phase)
{
        Recorder *rec = userdata;

        json_array_append_new(rec->phases, json_string(flash_phase_to_string(phase)));
        rec->writing = phase == FLASH_PHASE_WRITE;
        json_array_append_new(rec->phase_ms, json_integer((json_int_t)(now_ms() - rec->start_ms)));
}

static void on_progress(void *userdata, uint64_t done, uint64_t total)
{
        Recorder *rec = userdata;

        rec->last_done = done;
        rec->last_total = total;
        if (rec->cancel_after > 0 && rec->writing && done >= rec->cancel_after)
                atomic_store(&rec->cancel, true);
}

static uint64_t now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int read_file(const char *path, uint8_t **ret, size_t *ret_len)
{
        _cleanup_fclose_ FILE *f = NULL;
        _cleanup_free_ uint8_t *buf = NULL;
        size_t len = 0, cap = 0, n;

        f = fopen(path, "rbe");
        if (!f)
                return -errno;
        for (;;) {
                if (len == cap) {
                        uint8_t *b = realloc(buf, cap = cap ? cap * 2 : 65536);
                        if (!b)
                                return -ENOMEM;
                        buf = b;
                }
                n = fread(buf + len, 1, cap - len, f);
                if (n == 0)
                        break;
                len += n;
        }
        if (ferror(f))
                return -EIO;
        *ret = TAKE_PTR(buf);
        *ret_len = len;
        return 0;
}

static json_t *stats_json(const DfuFlashStats *st)
{
        return json_pack("{s:I,s:I,s:I,s:I,s:b,s:I,s:I,s:I,s:I,s:b,s:b,s:I}", "sectors_touched",
                         (json_int_t)st->sectors_touched, "sectors_unchanged",
                         (json_int_t)st->sectors_unchanged, "sectors_blank", (json_int_t)st->sectors_blank,
                         "sectors_erased", (json_int_t)st->sectors_erased, "mass_erased", st->mass_erased,
                         "bytes_written", (json_int_t)st->bytes_written, "bytes_read",
                         (json_int_t)st->bytes_read, "bytes_verified", (json_int_t)st->bytes_verified,
                         "set_address_requests", (json_int_t)st->set_address_requests,
                         "cleared_error_at_start", st->cleared_error_at_start, "verify_mismatch",
                         st->verify_mismatch, "mismatch_address", (json_int_t)st->mismatch_address);
}

static const char *result_name(int r)
{
        switch (r) {
        case FLASH_RESULT_DONE:
                return "done";
        case FLASH_RESULT_LEFT:
                return "left";
        case FLASH_RESULT_LEFT_DEVICE_GONE:
                return "left-device-gone";
        case -ENODEV:
                return "ENODEV";
        case -EIO:
                return "EIO";
        case -EILSEQ:
                return "EILSEQ";
        case -ERANGE:
                return "ERANGE";
        case -EACCES:
                return "EACCES";
        case -EINVAL:
                return "EINVAL";
        case -ECANCELED:
                return "ECANCELED";
        case -ETIMEDOUT:
                return "ETIMEDOUT";
        case -EPROTO:
                return "EPROTO";
        case -ENXIO:
                return "ENXIO";
        default:
                return r >= 0 ? "ok" : "error";
        }
}

static void usage(void)
{
        fprintf(stderr,
                "usage: usb-flash-tool [--port PATH] flash FILE ADDRESS [--no-verify] [--mass-erase] "
                "[--no-skip] [--leave[=ADDR]] [--set-address-per-chunk] [--layout STRING] [--cancel-after "
                "BYTES]\n"
                "       usb-flash-tool [--port PATH] read ADDRESS LENGTH OUTFILE\n"
                "       usb-flash-tool [--port PATH] interrupt ADDRESS\n");
}

int main(int argc, char *argv[])
{
        static const struct option options[] = {
                { "port", required_argument, NULL, 'p' },
                { "no-verify", no_argument, NULL, 'V' },
                { "mass-erase", no_argument, NULL, 'M' },
                { "no-skip", no_argument, NULL, 'S' },
                { "leave", optional_argument, NULL, 'L' },
                { "set-address-per-chunk", no_argument, NULL, 'A' },
                { "layout", required_argument, NULL, 'l' },
                { "cancel-after", required_argument, NULL, 'c' },
                {},
        };
        DfuFlashRequest req = { DFU_FLASH_REQUEST_DEFAULTS };
        const char *port = "1-1.1", *leave_arg = NULL, *layout_arg = NULL;
        DfuseLayout *layout = NULL;
        bool per_chunk = false;
        Recorder rec = { .phases = json_array(), .phase_ms = json_array() };
        FlashCallbacks cb = {
                .phase = on_phase, .progress = on_progress, .cancel = &rec.cancel, .userdata = &rec
        };
        _cleanup_free_ char *message = NULL;
        _cleanup_free_ uint8_t *data = NULL;
        DfuSession *s = NULL;
        json_t *out, *notes;
        uint64_t start;
        int c, r;

        while ((c = getopt_long(argc, argv, "p:", options, NULL)) >= 0)
                switch (c) {
                case 'p':
                        port = optarg;
                        break;
                case 'V':
                        req.verify = false;
                        break;
                case 'M':
                        req.mass_erase = true;
                        break;
                case 'S':
                        req.skip_unchanged = false;
                        break;
                case 'L':
                        req.leave = true;
                        leave_arg = optarg;
                        break;
                case 'A':
                        per_chunk = true;
                        break;
                case 'l':
                        layout_arg = optarg;
                        break;
                case 'c':
                        rec.cancel_after = strtoull(optarg, NULL, 0);
                        break;
                default:
                        usage();
                        return 2;
                }
        /* options may also follow the command's arguments */
        if (argc - optind < 1) {
                usage();
                return 2;
        }

        out = json_object();
        start = rec.start_ms = now_ms();
        r = dfu_session_open_port_path(&s, port, &message);
        if (r >= 0) {
                if (per_chunk)
                        dfu_session_set_block_addressing(s, false);
                json_object_set_new(out, "dfuse", json_boolean(dfu_session_is_dfuse(s)));
                json_object_set_new(out, "transfer_size", json_integer(dfu_session_get_transfer_size(s)));
        }

        if (r >= 0 && streq(argv[optind], "flash") && argc - optind >= 3) {
                _cleanup_(flash_image_freep) FlashImage *img = NULL;
                uint32_t address = (uint32_t)strtoul(argv[optind + 2], NULL, 0);
                size_t len = 0;

                r = read_file(argv[optind + 1], &data, &len);
                if (r < 0) {
                        fprintf(stderr, "%s: %s\n", argv[optind + 1], strerror(-r));
                        return 2;
                }
                if (flash_image_new(&img, FLASH_IMAGE_FORMAT_BIN) < 0 ||
                    flash_image_add(img, address, data, len) < 0) {
                        fprintf(stderr, "%s: cannot be placed at 0x%08" PRIx32 "\n", argv[optind + 1],
                                address);
                        return 2;
                }
                /* a layout given by the caller instead of the device's own
                 * (tests: a layout that lies about the sector sizes) */
                if (layout_arg && dfuse_layout_parse(layout_arg, strlen(layout_arg), &layout) < 0) {
                        fprintf(stderr, "bad layout: %s\n", layout_arg);
                        return 2;
                }
                req.layout = layout;
                req.image = img;
                req.leave_address = leave_arg ? (uint32_t)strtoul(leave_arg, NULL, 0) : address;
                r = dfu_session_flash(s, &req, &cb, &message);
        } else if (r >= 0 && streq(argv[optind], "read") && argc - optind >= 4) {
                uint32_t address = (uint32_t)strtoul(argv[optind + 1], NULL, 0);
                size_t len = strtoul(argv[optind + 2], NULL, 0);
                _cleanup_fclose_ FILE *f = NULL;

                data = malloc(len ? len : 1);
                if (!data)
                        return 2;
                r = dfu_session_read(s, address, data, len, &cb, &message);
                if (r >= 0) {
                        f = fopen(argv[optind + 3], "wbe");
                        if (!f || fwrite(data, 1, (size_t)r, f) != (size_t)r) {
                                fprintf(stderr, "%s: cannot write\n", argv[optind + 3]);
                                return 2;
                        }
                }
        } else if (r >= 0 && streq(argv[optind], "interrupt") && argc - optind >= 2) {
                uint16_t len = dfu_session_get_transfer_size(s);

                data = malloc(len);
                if (!data)
                        return 2;
                memset(data, 0x55, len);
                r = dfu_session_make_idle(s, &cb);
                if (r >= 0)
                        r = dfu_session_dfuse_set_address(s, (uint32_t)strtoul(argv[optind + 1], NULL, 0));
                if (r >= 0)
                        r = usb_transport_control(dfu_session_get_transport(s), DFU_REQUEST_TYPE_OUT,
                                                  DFU_REQUEST_DNLOAD, DFUSE_FIRST_DATA_BLOCK,
                                                  dfu_session_get_info(s)->alts[0].interface, data, len,
                                                  5000);
        } else if (r >= 0) {
                usage();
                dfu_session_free(s);
                return 2;
        }

        json_object_set_new(out, "result", json_integer(r));
        json_object_set_new(out, "status", json_string(result_name(r)));
        json_object_set_new(out, "message", message ? json_string(message) : json_null());
        json_object_set_new(out, "elapsed_ms", json_integer((json_int_t)(now_ms() - start)));
        json_object_set_new(out, "phases", rec.phases);
        json_object_set_new(out, "phase_ms", rec.phase_ms);
        json_object_set_new(out, "progress_done", json_integer((json_int_t)rec.last_done));
        json_object_set_new(out, "progress_total", json_integer((json_int_t)rec.last_total));
        notes = json_array();
        if (s) {
                for (char *const *n = dfu_session_get_notes(s); *n; n++)
                        json_array_append_new(notes, json_string(*n));
                json_object_set_new(out, "stats", stats_json(dfu_session_get_stats(s)));
        }
        json_object_set_new(out, "notes", notes);
        json_dumpf(out, stdout, JSON_SORT_KEYS);
        fputc('\n', stdout);
        json_decref(out);
        dfu_session_free(s);
        dfuse_layout_free(layout);
        return r >= 0 ? 0 : 1;
}
