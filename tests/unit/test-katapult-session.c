/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The Katapult session against the virtual board's Katapult model, over a
 * socketpair: the model runs on a thread that plays the device side.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../vboard/katapult-model.h"
#include "util/macros.h"
#include "serial/katapult-session.h"
#include "serial/serial-port.h"
#include "tests.h"

#define FLASH_BASE 0x08000000u
#define FLASH_SIZE (512u * 1024u)
#define APP_START  0x08008000u

typedef struct Device {
        int fd;
        KatapultModel *model;
        FlashModel *flash;
        atomic_bool stop;
        uint64_t unplug_after_blocks; /* close the line after this many written blocks (0 = never) */
        bool tamper_after_eof;        /* change one flash byte after EOF (verify must notice) */
        bool tampered;
        bool gone_on_complete; /* reset before the ACK of COMPLETE leaves (USB) */
        pthread_t thread;
} Device;

static void *device_run(void *p)
{
        Device *d = p;
        uint8_t buf[4096];

        while (!atomic_load(&d->stop)) {
                struct pollfd pfd = { .fd = d->fd, .events = POLLIN };
                int r = poll(&pfd, 1, 10);
                if (r > 0) {
                        ssize_t n = read(d->fd, buf, sizeof(buf));
                        if (n <= 0)
                                break;
                        katapult_model_feed(d->model, buf, (size_t)n);
                }
                const KatapultModelStats *st = katapult_model_get_stats(d->model);
                if (d->tamper_after_eof && st->eofs > 0 && !d->tampered) {
                        uint8_t b = 0x00;
                        flash_model_load(d->flash, APP_START + 1000, &b, 1);
                        d->tampered = true;
                }
                if (d->gone_on_complete && katapult_model_completed(d->model))
                        break;
                uint64_t delay;
                size_t n;
                while ((n = katapult_model_take_output(d->model, buf, sizeof(buf), &delay)) > 0) {
                        if (delay > 0) {
                                struct timespec ts = { .tv_nsec = (long)delay * 1000 };
                                nanosleep(&ts, NULL);
                        }
                        for (size_t off = 0; off < n;) {
                                ssize_t k = write(d->fd, buf + off, n - off);
                                if (k < 0 && errno == EAGAIN) {
                                        struct pollfd o = { .fd = d->fd, .events = POLLOUT };
                                        poll(&o, 1, 100);
                                        continue;
                                }
                                if (k <= 0)
                                        goto out;
                                off += (size_t)k;
                        }
                }
                if (d->unplug_after_blocks && st->blocks_written >= d->unplug_after_blocks)
                        break; /* the board is gone */
        }
out:
        close(d->fd);
        d->fd = -1;
        return NULL;
}

typedef struct Case {
        const char *name;
        uint32_t block_size;
        size_t image_size;
        KatapultModelQuirks quirks;
        KatapultFlashOptions opts; /* image_mcu NULL -> matching */
        const char *image_mcu;
        uint64_t unplug_after_blocks;
        bool tamper;
        bool cancel_at_start;
        bool gone_on_complete;
        bool prime;
        int expected;
        bool expect_written;   /* the image is in flash afterwards */
        bool expect_untouched; /* not a single block written */
        /* afterwards, the application's vector table is: 1 valid, -1 erased, 0 not checked */
        int expect_vector_table;
} Case;

static unsigned phases_seen;
static uint64_t last_done, last_total;

static unsigned notes_seen;

static void on_phase(void *userdata, FlashPhase p)
{
        phases_seen |= 1u << p;
}

static void on_note(void *userdata, const char *text)
{
        notes_seen++;
}

static void on_progress(void *userdata, uint64_t done, uint64_t total)
{
        CHECK(done <= total);
        last_done = done;
        last_total = total;
}

static void fill_image(uint8_t *img, size_t size)
{
        /* A plausible vector table, then a pattern. */
        for (size_t i = 0; i < size; i++)
                img[i] = (uint8_t)(i * 7 + (i >> 8));
        if (size >= 8) {
                katapult_put_le32(img, 0x20020000);
                katapult_put_le32(img + 4, APP_START + 0x1c1);
        }
}

static void run_case(const Case *c)
{
        static const FlashSector sectors[] = {
                { 0x08000000, 16384 },  { 0x08004000, 16384 },  { 0x08008000, 16384 },
                { 0x0800c000, 16384 },  { 0x08010000, 65536 },  { 0x08020000, 131072 },
                { 0x08040000, 131072 }, { 0x08060000, 131072 },
        };
        Device d = { .unplug_after_blocks = c->unplug_after_blocks,
                     .tamper_after_eof = c->tamper,
                     .gone_on_complete = c->gone_on_complete };
        _cleanup_(serial_port_freep) SerialPort *port = NULL;
        _cleanup_(katapult_session_freep) KatapultSession *s = NULL;
        atomic_bool cancel = c->cancel_at_start;
        int sv[2];

        fprintf(stderr, "case %s\n", c->name);
        phases_seen = 0;
        notes_seen = 0;
        last_done = last_total = 0;

        CHECK_INT(flash_model_new(&d.flash, FLASH_BASE, FLASH_SIZE, true, sectors, ELEMENTSOF(sectors)), 0);
        /* Something below the application that must never change. */
        uint8_t boot[16] = "KATAPULT-BOOT";
        flash_model_load(d.flash, FLASH_BASE, boot, sizeof(boot));
        /* An old application, so erases are needed. */
        uint8_t old[4096];
        memset(old, 0x5a, sizeof(old));
        flash_model_load(d.flash, APP_START, old, sizeof(old));

        KatapultModelConfig cfg = {
                .start_address = APP_START,
                .block_size = c->block_size,
                .mcu = "stm32f446xx",
                .quirks = c->quirks,
        };
        CHECK_INT(katapult_model_new(&d.model, d.flash, &cfg), 0);

        CHECK_INT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        d.fd = sv[1];
        CHECK_INT(serial_port_new_from_fd(&port, sv[0]), 0);
        CHECK_INT(pthread_create(&d.thread, NULL, device_run, &d), 0);

        CHECK_INT(katapult_session_new(&s, serial_port_get_transport(port)), 0);
        KatapultTimeouts t = {
                .reply_usec = 400 * 1000,
                .block_reply_usec = 600 * 1000,
                .quiet_usec = 30 * 1000,
                .retry_delay_usec = 2 * 1000,
                .busy_delay_usec = 5 * 1000,
                .tries = 5,
        };
        katapult_session_set_timeouts(s, &t);
        katapult_session_set_prime(s, c->prime);
        FlashCallbacks cb = {
                .phase = on_phase, .progress = on_progress, .note = on_note, .cancel = &cancel
        };

        uint8_t *img = malloc(c->image_size);
        fill_image(img, c->image_size);
        KatapultFlashOptions opts = c->opts;
        opts.image_mcu = c->image_mcu ? c->image_mcu : "stm32f446xx";

        _cleanup_free_ char *msg = NULL;
        _cleanup_(flash_image_freep) FlashImage *image = NULL;
        CHECK_INT(flash_image_new(&image, FLASH_IMAGE_FORMAT_BIN), 0);
        CHECK_INT(flash_image_add(image, APP_START, img, c->image_size), 0);
        int r = katapult_session_flash(s, image, &opts, &cb, &msg);
        CHECK_INT(r, c->expected);
        CHECK(msg != NULL);
        fprintf(stderr, "  %s\n", strna(msg));
        if (r < 0)
                CHECK_STR(katapult_session_get_error(s), msg);
        else
                CHECK(katapult_session_get_error(s) == NULL);

        atomic_store(&d.stop, true);
        pthread_join(d.thread, NULL);

        const KatapultModelStats *st = katapult_model_get_stats(d.model);
        uint8_t *back = malloc(c->image_size);
        CHECK_INT(flash_model_read(d.flash, APP_START, back, c->image_size), 0);
        if (c->expect_written) {
                CHECK(memcmp(back, img, c->image_size) == 0);
                CHECK(katapult_model_completed(d.model));
                CHECK(katapult_model_app_plausible(d.model));
                CHECK_INT(last_done, c->image_size);
                CHECK_INT(last_total, c->image_size);
                CHECK_INT(phases_seen,
                          1u << FLASH_PHASE_WRITE | 1u << FLASH_PHASE_VERIFY | 1u << FLASH_PHASE_LEAVE);
                /* the padding of the last block is 0xFF */
                size_t padded = DIV_ROUND_UP(c->image_size, c->block_size) * c->block_size;
                for (size_t i = c->image_size; i < padded; i++) {
                        uint8_t b;
                        flash_model_read(d.flash, APP_START + (uint32_t)i, &b, 1);
                        CHECK_INT(b, 0xff);
                }
        }
        if (c->expect_untouched) {
                CHECK_INT(st->blocks_written, 0);
                CHECK_INT(st->sectors_erased, 0);
                CHECK(!katapult_model_completed(d.model));
                uint8_t now[sizeof(old)];
                flash_model_read(d.flash, APP_START, now, sizeof(now));
                CHECK(memcmp(now, old, sizeof(old)) == 0);
        }
        if (c->expect_vector_table)
                CHECK_INT(katapult_model_app_plausible(d.model), c->expect_vector_table > 0);
        /* The bootloader region is never touched. */
        uint8_t b2[sizeof(boot)];
        flash_model_read(d.flash, FLASH_BASE, b2, sizeof(b2));
        CHECK(memcmp(b2, boot, sizeof(boot)) == 0);

        const KatapultFlashStats *fs = katapult_session_get_stats(s);
        if (c->quirks.corrupt_every || c->quirks.nack_every || c->quirks.busy_every)
                CHECK(fs->resends > 0);
        if (c->quirks.busy_every)
                CHECK(fs->busies > 0);
        if (c->quirks.nack_every)
                CHECK(fs->nacks > 0);
        if (c->quirks.corrupt_every)
                CHECK_INT(st->corrupted > 0, 1);
        if (c->prime)
                CHECK_INT(st->errors, 1); /* the priming command's answer, ignored */
        if (c->expect_written) {
                CHECK_INT(fs->blocks_written, DIV_ROUND_UP(c->image_size, c->block_size));
                CHECK_INT(fs->blocks_verified, fs->blocks_written);
                CHECK(notes_seen > 0);
        }

        free(img);
        free(back);
        katapult_model_free(d.model);
        flash_model_free(d.flash);
}

/* GET_CANBUS_ID: a CAN build answers its UUID, a USB build refuses the
 * command (ERROR every time), and the session says so. */
static void test_canbus_id(void)
{
        static const FlashSector sectors[] = {
                { 0x08000000, 16384 }, { 0x08004000, 16384 }, { 0x08008000, 16384 }, { 0x0800c000, 16384 }
        };
        static const uint8_t uuid[6] = { 0x01, 0x23, 0x45, 0x67, 0x89, 0xab };

        for (int can = 0; can < 2; can++) {
                Device d = {};
                _cleanup_(serial_port_freep) SerialPort *port = NULL;
                _cleanup_(katapult_session_freep) KatapultSession *s = NULL;
                _cleanup_free_ char *msg = NULL;
                uint8_t got[6] = {};
                int sv[2];

                fprintf(stderr, "case GET_CANBUS_ID, %s build\n", can ? "CAN" : "USB");
                CHECK_INT(flash_model_new(&d.flash, FLASH_BASE, 65536, true, sectors, ELEMENTSOF(sectors)),
                          0);
                KatapultModelConfig cfg = {
                        .start_address = APP_START,
                        .block_size = 64,
                        .mcu = "stm32g0b1xx",
                        .canbus_uuid = can ? uuid : NULL,
                };
                CHECK_INT(katapult_model_new(&d.model, d.flash, &cfg), 0);
                CHECK_INT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
                d.fd = sv[1];
                CHECK_INT(serial_port_new_from_fd(&port, sv[0]), 0);
                CHECK_INT(pthread_create(&d.thread, NULL, device_run, &d), 0);
                CHECK_INT(katapult_session_new(&s, serial_port_get_transport(port)), 0);
                KatapultTimeouts t = { .reply_usec = 300 * 1000,
                                       .block_reply_usec = 300 * 1000,
                                       .quiet_usec = 30 * 1000,
                                       .retry_delay_usec = 2 * 1000,
                                       .busy_delay_usec = 2 * 1000,
                                       .tries = 2 };
                katapult_session_set_timeouts(s, &t);

                int r = katapult_session_get_canbus_id(s, got, NULL, &msg);
                if (can) {
                        CHECK_INT(r, 0);
                        CHECK(memcmp(got, uuid, sizeof(uuid)) == 0);
                } else {
                        CHECK_INT(r, FLASH_ERR_REMOTE);
                        CHECK(msg && strstr(msg, "GET_CANBUS_ID"));
                }
                atomic_store(&d.stop, true);
                pthread_join(d.thread, NULL);
                katapult_model_free(d.model);
                flash_model_free(d.flash);
        }
}

int main(void)
{
        test_canbus_id();
        static const Case cases[] = {
                { .name = "happy 64",
                  .block_size = 64,
                  .image_size = 5000,
                  .expected = FLASH_RESULT_LEFT,
                  .expect_written = true },
                { .name = "happy 128 exact",
                  .block_size = 128,
                  .image_size = 8192,
                  .expected = FLASH_RESULT_LEFT,
                  .expect_written = true },
                { .name = "happy 256 across sectors",
                  .block_size = 256,
                  .image_size = 40000,
                  .expected = FLASH_RESULT_LEFT,
                  .expect_written = true },
                { .name = "happy 512 tiny",
                  .block_size = 512,
                  .image_size = 8,
                  .expected = FLASH_RESULT_LEFT,
                  .expect_written = true },
                { .name = "corrupted replies",
                  .block_size = 64,
                  .image_size = 3000,
                  .quirks = { .corrupt_every = 7 },
                  .expected = FLASH_RESULT_LEFT,
                  .expect_written = true },
                { .name = "nacks",
                  .block_size = 128,
                  .image_size = 3000,
                  .quirks = { .nack_every = 5 },
                  .expected = FLASH_RESULT_LEFT,
                  .expect_written = true },
                { .name = "busy",
                  .block_size = 256,
                  .image_size = 3000,
                  .quirks = { .busy_every = 4 },
                  .expected = FLASH_RESULT_LEFT,
                  .expect_written = true },
                { .name = "everything at once",
                  .block_size = 64,
                  .image_size = 2000,
                  .quirks = { .corrupt_every = 9, .nack_every = 7, .busy_every = 11, .reply_delay_us = 200 },
                  .expected = FLASH_RESULT_LEFT,
                  .expect_written = true },
                { .name = "slow device",
                  .block_size = 512,
                  .image_size = 2048,
                  .quirks = { .reply_delay_us = 20000 },
                  .expected = FLASH_RESULT_LEFT,
                  .expect_written = true },
                { .name = "every command NACKed",
                  .block_size = 64,
                  .image_size = 256,
                  .quirks = { .nack_every = 1 },
                  .expected = -ETIMEDOUT,
                  .expect_untouched = true },
                { .name = "wrong mcu",
                  .block_size = 64,
                  .image_size = 1000,
                  .image_mcu = "stm32f429xx",
                  .expected = FLASH_ERR_MCU,
                  .expect_untouched = true },
                { .name = "wrong mcu forced",
                  .block_size = 64,
                  .image_size = 1000,
                  .image_mcu = "stm32f429xx",
                  .opts = { .force_mcu = true },
                  .expected = FLASH_RESULT_LEFT,
                  .expect_written = true },
                { .name = "wrong address",
                  .block_size = 64,
                  .image_size = 1000,
                  .opts = { .image_address = 0x08000000 },
                  .expected = FLASH_ERR_ADDRESS,
                  .expect_untouched = true },
                { .name = "right address",
                  .block_size = 64,
                  .image_size = 1000,
                  .opts = { .image_address = APP_START },
                  .expected = FLASH_RESULT_LEFT,
                  .expect_written = true },
                { .name = "unplugged mid-transfer",
                  .block_size = 64,
                  .image_size = 20000,
                  .unplug_after_blocks = 40,
                  .expected = -ENODEV,
                  .expect_vector_table = -1 },
                /* The first page (16 KiB at 0x08008000) goes last: while the
                 * pages after it are written, the old application's vector
                 * table is erased, so the board stays in Katapult. */
                { .name = "unplugged in the second page",
                  .block_size = 256,
                  .image_size = 40000,
                  .unplug_after_blocks = 10,
                  .expected = -ENODEV,
                  .expect_vector_table = -1 },
                { .name = "unplugged in the third page",
                  .block_size = 256,
                  .image_size = 40000,
                  .unplug_after_blocks = 70,
                  .expected = -ENODEV,
                  .expect_vector_table = -1 },
                { .name = "image within the first page: in order",
                  .block_size = 256,
                  .image_size = 8192,
                  .expected = FLASH_RESULT_LEFT,
                  .expect_written = true,
                  .expect_vector_table = 1 },
                { .name = "verify mismatch",
                  .block_size = 128,
                  .image_size = 4000,
                  .tamper = true,
                  .expected = FLASH_ERR_VERIFY },
                { .name = "reset before COMPLETE's answer",
                  .block_size = 64,
                  .image_size = 700,
                  .gone_on_complete = true,
                  .expected = FLASH_RESULT_LEFT_DEVICE_GONE,
                  .expect_written = true },
                { .name = "primed connect",
                  .block_size = 64,
                  .image_size = 700,
                  .prime = true,
                  .expected = FLASH_RESULT_LEFT,
                  .expect_written = true },
                { .name = "cancelled",
                  .block_size = 64,
                  .image_size = 4000,
                  .cancel_at_start = true,
                  .expected = -ECANCELED,
                  .expect_untouched = true },
        };

        /* The unplug case closes the socketpair under the session. */
        signal(SIGPIPE, SIG_IGN);
        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                run_case(&cases[i]);

        CHECK(katapult_mcu_needs_prime("stm32g0b1xx"));
        CHECK(katapult_mcu_needs_prime("stm32f103xe"));
        CHECK(!katapult_mcu_needs_prime("stm32f446xx"));
        CHECK(!katapult_mcu_needs_prime("stm32h723xx"));
        CHECK(!katapult_mcu_needs_prime("rp2040"));
        CHECK(!katapult_mcu_needs_prime(NULL));
        TESTS_EXIT();
}
