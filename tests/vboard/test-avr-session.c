/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The AVR sessions against the real Arduino bootloaders (arduino-core-avr)
 * running in simavr (avr-sim.c), over a socketpair: the simulated UART on
 * one end, the session's SerialTransport on the other. Every result is
 * read from the simulated flash.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../unit/tests.h"
#include "avr-sim.h"
#include "codec/stk500v2-proto.h"
#include "util/macros.h"
#include "serial/avr-session.h"
#include "serial/serial-port.h"

#define BOOTLOADERS "/usr/share/arduino/hardware/arduino/avr/bootloaders/"

typedef struct Rig {
        AvrSim *sim;
        int fd; /* the board's end */
        pthread_t thread;
        atomic_bool stop;
        SerialPort *port;
        /* quirks */
        unsigned ignore_resets;         /* the first N pulses miss the chip */
        uint64_t unplug_after_programs; /* 0: never */
        atomic_bool unplugged;
        unsigned pulses;
} Rig;

static void on_output(void *userdata, const uint8_t *data, size_t len)
{
        Rig *rig = userdata;
        if (!atomic_load(&rig->unplugged) && rig->fd >= 0)
                (void)!write(rig->fd, data, len);
}

static void *pump(void *userdata)
{
        Rig *rig = userdata;
        uint8_t buf[512];

        while (!atomic_load(&rig->stop)) {
                ssize_t n = read(rig->fd, buf, sizeof(buf));
                if (n <= 0)
                        break;
                avr_sim_input(rig->sim, buf, (size_t)n);
                if (rig->unplug_after_programs &&
                    avr_sim_get_stats(rig->sim).v2_program_commands >= rig->unplug_after_programs) {
                        /* the cable is pulled: the host end sees a hangup */
                        atomic_store(&rig->unplugged, true);
                        shutdown(rig->fd, SHUT_RDWR);
                        break;
                }
        }
        return NULL;
}

static int rig_reset(void *userdata)
{
        Rig *rig = userdata;
        if (rig->pulses++ < rig->ignore_resets)
                return 0;
        avr_sim_reset(rig->sim);
        return 0;
}

static void rig_connect(Rig *rig)
{
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                abort();
        rig->fd = sv[1];
        atomic_store(&rig->stop, false);
        atomic_store(&rig->unplugged, false);
        if (serial_port_new_from_fd(&rig->port, sv[0]) < 0)
                abort();
        if (pthread_create(&rig->thread, NULL, pump, rig) != 0)
                abort();
}

static void rig_disconnect(Rig *rig)
{
        atomic_store(&rig->stop, true);
        shutdown(rig->fd, SHUT_RDWR);
        rig->port = serial_port_free(rig->port);
        pthread_join(rig->thread, NULL);
        close(rig->fd);
        rig->fd = -1;
}

static void rig_new(Rig *rig, const AvrSimConfig *cfg)
{
        memset(rig, 0, sizeof(*rig));
        rig->fd = -1;
        AvrSimCallbacks cb = { .output = on_output, .userdata = rig };
        CHECK_INT(avr_sim_new(&rig->sim, cfg, &cb), 0);
        if (!rig->sim)
                exit(EXIT_FAILURE);
        rig_connect(rig);
}

static void rig_free(Rig *rig)
{
        rig_disconnect(rig);
        rig->sim = avr_sim_free(rig->sim);
}

static int flash(Rig *rig, AvrProtocol proto, const AvrChip *chip, const uint8_t *img, size_t size,
                 AvrFlashStats *ret_stats, char **ret_message)
{
        _cleanup_(avr_session_freep) AvrSession *s = NULL;
        AvrFlashOptions o = { .chip = *chip, .reset = rig_reset, .reset_userdata = rig };
        int r;

        CHECK_INT(avr_session_new(&s, serial_port_get_transport(rig->port), proto), 0);
        _cleanup_(flash_image_freep) FlashImage *image = NULL;
        CHECK_INT(flash_image_new(&image, FLASH_IMAGE_FORMAT_BIN), 0);
        CHECK_INT(flash_image_add(image, 0, img, size), 0);
        r = avr_session_flash(s, image, &o, NULL, ret_message);
        *ret_stats = *avr_session_get_stats(s);
        return r;
}

static bool flash_equals(Rig *rig, uint32_t addr, const uint8_t *data, size_t len)
{
        uint8_t *buf = malloc(len);
        bool eq = avr_sim_read_flash(rig->sim, addr, buf, len) == 0 && memcmp(buf, data, len) == 0;
        free(buf);
        return eq;
}

static void wait_app(Rig *rig)
{
        for (int i = 0; i < 200 && avr_sim_get_state(rig->sim) != AVR_SIM_APP; i++)
                usleep(10000);
        CHECK_INT(avr_sim_get_state(rig->sim), AVR_SIM_APP);
}

static void fill(uint8_t *buf, size_t len, unsigned seed)
{
        for (size_t i = 0; i < len; i++)
                buf[i] = (uint8_t)((i * 131u + seed * 7u + (i >> 8)) ^ seed);
}

static const AvrChip mega = {
        .mcu = "atmega2560",
        .signature = { 0x1e, 0x98, 0x01 },
        .flash_size = 256u * 1024u,
        .page_size = 256,
        .boot_size = 8192,
};

static const AvrSimConfig mega_sim = {
        .mcu = "atmega2560",
        .frequency = 16000000,
        .bootloader_hex = BOOTLOADERS "stk500v2/stk500boot_v2_mega2560.hex",
        .boot_address = 0x3e000,
        .speed = 1.0,
};

static void test_mega(void)
{
        Rig rig;
        AvrFlashStats st;
        char *msg = NULL;
        uint8_t a[3000], b[3000];
        const size_t pages = (sizeof(a) + 255) / 256;

        rig_new(&rig, &mega_sim);

        /* blank chip -> image, then the application runs */
        fill(a, sizeof(a), 1);
        CHECK_INT(flash(&rig, AVR_PROTOCOL_STK500V2, &mega, a, sizeof(a), &st, &msg), FLASH_RESULT_LEFT);
        fprintf(stderr, "mega flash: %s\n", msg);
        free(msg);
        CHECK_STR(st.programmer, "AVRISP_2");
        CHECK(memcmp(st.signature, "\x1e\x98\x01", 3) == 0);
        CHECK_INT(st.pages_written, pages);
        CHECK(flash_equals(&rig, 0, a, sizeof(a)));
        wait_app(&rig);

        /* the same image again: nothing written */
        uint64_t before = avr_sim_get_stats(rig.sim).v2_program_commands;
        CHECK_INT(flash(&rig, AVR_PROTOCOL_STK500V2, &mega, a, sizeof(a), &st, &msg),
                  FLASH_RESULT_UNCHANGED);
        free(msg);
        CHECK_INT(avr_sim_get_stats(rig.sim).v2_program_commands, before);
        CHECK_INT(st.pages_written, 0);
        CHECK(flash_equals(&rig, 0, a, sizeof(a)));
        wait_app(&rig);

        /* a change in the last page: every page from 0 written in order,
         * so the first pages survive the sequential erase */
        memcpy(b, a, sizeof(b));
        b[sizeof(b) - 10] ^= 0xff;
        CHECK_INT(flash(&rig, AVR_PROTOCOL_STK500V2, &mega, b, sizeof(b), &st, &msg), FLASH_RESULT_LEFT);
        free(msg);
        CHECK_INT(st.pages_written, pages);
        CHECK(flash_equals(&rig, 0, b, sizeof(b)));
        wait_app(&rig);

        /* the bootloader missed the first pulse: pulsed again */
        rig.ignore_resets = rig.pulses + 1;
        CHECK_INT(flash(&rig, AVR_PROTOCOL_STK500V2, &mega, a, sizeof(a), &st, &msg), FLASH_RESULT_LEFT);
        free(msg);
        CHECK_INT(st.resets, 2);
        CHECK(flash_equals(&rig, 0, a, sizeof(a)));
        wait_app(&rig);

        /* another chip: refused before any page is written */
        AvrChip other = mega;
        other.signature[2] = 0x02;
        before = avr_sim_get_stats(rig.sim).v2_program_commands;
        CHECK_INT(flash(&rig, AVR_PROTOCOL_STK500V2, &other, b, sizeof(b), &st, &msg), FLASH_ERR_MCU);
        CHECK(msg && strstr(msg, "1e 98 01"));
        free(msg);
        CHECK_INT(avr_sim_get_stats(rig.sim).v2_program_commands, before);
        CHECK(flash_equals(&rig, 0, a, sizeof(a)));

        /* an image reaching into the boot section: refused before a reset */
        size_t big = mega.flash_size - mega.boot_size + 2;
        uint8_t *huge = calloc(1, big);
        uint64_t resets = avr_sim_get_stats(rig.sim).resets;
        CHECK_INT(flash(&rig, AVR_PROTOCOL_STK500V2, &mega, huge, big, &st, &msg),
                  FLASH_ERR_BOOTLOADER_REGION);
        CHECK(msg && strstr(msg, "bootloader"));
        free(msg);
        CHECK_INT(avr_sim_get_stats(rig.sim).resets, resets);
        /* exactly up to the boot section is fine for the check */
        CHECK_INT(avr_image_check(big - 2, &mega, NULL), 0);
        free(huge);

        /* cable pulled after 5 pages: device gone; the retry flashes */
        rig.unplug_after_programs = avr_sim_get_stats(rig.sim).v2_program_commands + 5;
        CHECK_INT(flash(&rig, AVR_PROTOCOL_STK500V2, &mega, b, sizeof(b), &st, &msg), -ENODEV);
        CHECK(msg && strstr(msg, "vanished"));
        free(msg);
        rig_disconnect(&rig);
        rig.unplug_after_programs = 0;
        rig_connect(&rig);
        CHECK_INT(flash(&rig, AVR_PROTOCOL_STK500V2, &mega, b, sizeof(b), &st, &msg), FLASH_RESULT_LEFT);
        free(msg);
        CHECK(flash_equals(&rig, 0, b, sizeof(b)));
        wait_app(&rig);

        rig_free(&rig);
}

/*
 * The trap itself, with raw commands against the real bootloader: one
 * page written at the end erases page 0 (the reason the session writes
 * every page). Fails if the bootloader model stops showing it, which
 * would make the test above meaningless.
 */
static void test_mega_sequential_erase(void)
{
        Rig rig;
        uint8_t page[256], msg[STK500V2_MSG_MAX], body[STK500V2_BODY_MAX], got[256];
        AvrFlashStats st;
        char *m = NULL;
        Stk500v2Decoder d;
        SerialTransport *t;
        uint8_t seq = 1;

        rig_new(&rig, &mega_sim);
        fill(page, sizeof(page), 3);
        uint8_t img[1024];
        fill(img, sizeof(img), 4);
        CHECK_INT(flash(&rig, AVR_PROTOCOL_STK500V2, &mega, img, sizeof(img), &st, &m), FLASH_RESULT_LEFT);
        free(m);
        wait_app(&rig);

        t = serial_port_get_transport(rig.port);
        avr_sim_reset(rig.sim);
        usleep(50000);
        const uint8_t *bodies[3];
        size_t lens[3];
        bodies[0] = (const uint8_t[]){ STK500V2_CMD_SIGN_ON };
        lens[0] = 1;
        uint8_t la[8];
        lens[1] = (size_t)stk500v2_body_load_address(la, 0x300, true);
        bodies[1] = la;
        lens[2] = (size_t)stk500v2_body_program_flash(body, page, sizeof(page));
        bodies[2] = body;
        stk500v2_decoder_init(&d);
        for (size_t i = 0; i < 3; i++) {
                int n = stk500v2_encode(seq++, bodies[i], lens[i], msg, sizeof(msg));
                CHECK_INT(serial_transport_write(t, msg, (size_t)n, 1000000), 0);
                Stk500v2Message reply;
                bool got_reply = false;
                for (int k = 0; k < 50 && !got_reply; k++) {
                        uint8_t in[512];
                        ssize_t r = serial_transport_read(t, in, sizeof(in), 100000);
                        for (ssize_t j = 0; j < r; j++)
                                if (stk500v2_decoder_push(&d, in[j], &reply) > 0)
                                        got_reply = true;
                }
                CHECK(got_reply);
        }
        CHECK(flash_equals(&rig, 0x300, page, sizeof(page)));
        memset(got, 0, sizeof(got));
        CHECK_INT(avr_sim_read_flash(rig.sim, 0, got, sizeof(got)), 0);
        bool erased = true;
        for (size_t i = 0; i < sizeof(got); i++)
                erased = erased && got[i] == 0xff;
        CHECK(erased);
        rig_free(&rig);
}

static const AvrChip uno = {
        .mcu = "atmega328p",
        .signature = { 0x1e, 0x95, 0x0f },
        .flash_size = 32u * 1024u,
        .page_size = 128,
        .boot_size = 512,
};

static const AvrSimConfig uno_sim = {
        .mcu = "atmega328p",
        .frequency = 16000000,
        .bootloader_hex = BOOTLOADERS "optiboot/optiboot_atmega328.hex",
        .boot_address = 0x7e00,
        .speed = 1.0,
};

static void test_optiboot(void)
{
        Rig rig;
        AvrFlashStats st;
        char *msg = NULL;
        uint8_t a[2000], b[2000];

        rig_new(&rig, &uno_sim);
        fill(a, sizeof(a), 5);
        CHECK_INT(flash(&rig, AVR_PROTOCOL_STK500V1, &uno, a, sizeof(a), &st, &msg), FLASH_RESULT_LEFT);
        fprintf(stderr, "optiboot flash: %s\n", msg);
        free(msg);
        CHECK(memcmp(st.signature, "\x1e\x95\x0f", 3) == 0);
        CHECK_INT(st.pages_written, (sizeof(a) + 127) / 128);
        CHECK(flash_equals(&rig, 0, a, sizeof(a)));
        wait_app(&rig);

        /* optiboot erases the page it writes: only the changed page */
        memcpy(b, a, sizeof(b));
        b[700] ^= 0x55;
        CHECK_INT(flash(&rig, AVR_PROTOCOL_STK500V1, &uno, b, sizeof(b), &st, &msg), FLASH_RESULT_LEFT);
        fprintf(stderr, "optiboot reflash: %s\n", msg);
        free(msg);
        CHECK_INT(st.pages_written, 1);
        CHECK(flash_equals(&rig, 0, b, sizeof(b)));
        wait_app(&rig);

        CHECK_INT(flash(&rig, AVR_PROTOCOL_STK500V1, &uno, b, sizeof(b), &st, &msg), FLASH_RESULT_UNCHANGED);
        free(msg);

        CHECK_INT(flash(&rig, AVR_PROTOCOL_STK500V1, &mega, b, sizeof(b), &st, &msg), FLASH_ERR_MCU);
        free(msg);
        rig_free(&rig);
}

int main(int argc, char **argv)
{
        if (access(mega_sim.bootloader_hex, R_OK) < 0 || access(uno_sim.bootloader_hex, R_OK) < 0) {
                fprintf(stderr, "arduino-core-avr is not installed (scripts/deps)\n");
                return 77;
        }
        test_mega_sequential_erase();
        test_mega();
        test_optiboot();
        TESTS_EXIT();
}
