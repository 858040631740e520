/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Test driver for the PICOBOOT session (daemon/usb/picoboot-session.c):
 * opens an RP2040 in BOOTSEL by port path and flashes a file (UF2 by its
 * magic, else raw bytes at ADDRESS) or tells the ROM version, printing one
 * JSON object. The integration tests check the virtual flash itself, not
 * this tool's word.
 *
 *   picoboot-flash-tool [--port 1-1.1] flash FILE [ADDRESS] [--no-verify] [--no-reboot]
 *   picoboot-flash-tool [--port 1-1.1] rom-version
 *
 * Exit status 0 when the session returned >= 0, 1 otherwise, 2 on usage errors.
 */

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/uf2.h"
#include "util/macros.h"
#include "usb/picoboot-session.h"

static void on_phase(void *userdata, FlashPhase phase)
{
        json_array_append_new(userdata, json_string(flash_phase_to_string(phase)));
}

static int read_file(const char *path, uint8_t **ret, size_t *ret_len)
{
        _cleanup_fclose_ FILE *f = fopen(path, "rbe");
        _cleanup_free_ uint8_t *buf = NULL;
        size_t len = 0, cap = 0, n;

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
        *ret = TAKE_PTR(buf);
        *ret_len = len;
        return 0;
}

static const char *result_name(int r)
{
        switch (r) {
        case FLASH_RESULT_DONE:
                return "done";
        case FLASH_RESULT_LEFT:
                return "rebooted";
        case FLASH_RESULT_LEFT_DEVICE_GONE:
                return "rebooted-device-gone";
        case -ENODEV:
                return "ENODEV";
        case -EIO:
                return "EIO";
        case -EPIPE:
                return "EPIPE";
        case -EILSEQ:
                return "EILSEQ";
        case -ERANGE:
                return "ERANGE";
        case -ETIMEDOUT:
                return "ETIMEDOUT";
        case -EMEDIUMTYPE:
                return "EMEDIUMTYPE";
        default:
                return r >= 0 ? "ok" : "error";
        }
}

int main(int argc, char *argv[])
{
        static const struct option options[] = {
                { "port", required_argument, NULL, 'p' },
                { "no-verify", no_argument, NULL, 'V' },
                { "no-reboot", no_argument, NULL, 'R' },
                {},
        };
        const char *port = "1-1.1";
        PicobootFlashRequest req = { .verify = true, .reboot = true, .flash_size = 2 * 1024 * 1024 };
        _cleanup_(picoboot_session_freep) PicobootSession *s = NULL;
        _cleanup_(flash_image_freep) FlashImage *img = NULL;
        _cleanup_free_ char *message = NULL;
        _cleanup_free_ uint8_t *data = NULL;
        json_t *out = json_object(), *phases = json_array();
        FlashCallbacks cb = { .phase = on_phase, .userdata = phases };
        int c, r;

        while ((c = getopt_long(argc, argv, "p:", options, NULL)) >= 0)
                switch (c) {
                case 'p':
                        port = optarg;
                        break;
                case 'V':
                        req.verify = false;
                        break;
                case 'R':
                        req.reboot = false;
                        break;
                default:
                        return 2;
                }
        if (argc - optind < 1)
                return 2;

        r = picoboot_session_open_port_path(&s, port, &message);
        if (r >= 0 && streq(argv[optind], "flash") && argc - optind >= 2) {
                size_t len = 0;
                uint32_t address = argc - optind >= 3 ? (uint32_t)strtoul(argv[optind + 2], NULL, 0)
                                                      : RP2040_FLASH_BASE;

                if (read_file(argv[optind + 1], &data, &len) < 0)
                        return 2;
                if (uf2_detect(data, len))
                        r = uf2_parse(data, len, UF2_FAMILY_RP2040, UF2_RP2040_PAYLOAD, &img, &message);
                else
                        r = flash_image_parse_bin(data, len, address, &img, &message);
                if (r >= 0) {
                        req.image = img;
                        r = picoboot_session_flash(s, &req, &cb, &message);
                }
        } else if (r >= 0 && streq(argv[optind], "rom-version")) {
                uint8_t v = 0;
                r = picoboot_session_rom_version(s, &v);
                if (r >= 0)
                        json_object_set_new(out, "rom_version",
                                            json_string(rp2040_rom_version_to_string(v)));
        } else if (r >= 0)
                return 2;

        json_object_set_new(out, "result", json_integer(r));
        json_object_set_new(out, "status", json_string(result_name(r)));
        json_object_set_new(out, "message", message ? json_string(message) : json_null());
        json_object_set_new(out, "phases", phases);
        if (s) {
                const PicobootFlashStats *st = picoboot_session_get_stats(s);
                json_object_set_new(out, "stats",
                                    json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "sectors_touched",
                                              (json_int_t)st->sectors_touched, "sectors_unchanged",
                                              (json_int_t)st->sectors_unchanged, "sectors_erased",
                                              (json_int_t)st->sectors_erased, "bytes_written",
                                              (json_int_t)st->bytes_written, "bytes_read",
                                              (json_int_t)st->bytes_read, "bytes_verified",
                                              (json_int_t)st->bytes_verified, "stalls_recovered",
                                              (json_int_t)st->stalls_recovered));
        }
        json_dumpf(out, stdout, JSON_SORT_KEYS);
        fputc('\n', stdout);
        json_decref(out);
        return r >= 0 ? 0 : 1;
}
