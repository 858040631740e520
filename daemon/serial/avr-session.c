/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec/codec-util.h"
#include "serial/avr-session-internal.h"
#include "util/time-util.h"

/* Poll the cancel flag at least this often while waiting. */
#define CANCEL_SLICE_USEC (100u * 1000u)

const AvrTimeouts avr_timeouts_default = {
        /* a 256-byte page is ~25 ms on the wire at 115200 baud plus ~5 ms
         * of erase and write */
        .reply_usec = 1000u * 1000u,
        /* avrdude's arduino/wiring programmers: a few syncs ~200 ms apart;
         * the bootloaders wait about 1 s after a reset */
        .sync_usec = 200u * 1000u,
        .sync_tries = 6,
        .resets = 3,
        .settle_usec = 50u * 1000u,
};

static const char *const protocol_table[_AVR_PROTOCOL_MAX] = {
        [AVR_PROTOCOL_STK500V2] = "stk500v2",
        [AVR_PROTOCOL_STK500V1] = "stk500v1",
};

const char *avr_protocol_to_string(AvrProtocol p)
{
        return p >= 0 && p < _AVR_PROTOCOL_MAX ? protocol_table[p] : NULL;
}

AvrProtocol avr_protocol_from_string(const char *s)
{
        for (int i = 0; s && i < _AVR_PROTOCOL_MAX; i++)
                if (streq(s, protocol_table[i]))
                        return (AvrProtocol)i;
        return _AVR_PROTOCOL_INVALID;
}

_printf_(3, 4) static int fail(AvrSession *s, int r, const char *format, ...)
{
        va_list ap;
        va_start(ap, format);
        vsnprintf(s->error, sizeof(s->error), format, ap);
        va_end(ap);
        return r;
}

int avr_session_receive(AvrSession *s, uint64_t timeout_usec, AvrByteFn fn, void *userdata)
{
        uint64_t end = now_usec(CLOCK_MONOTONIC) + timeout_usec;
        uint8_t buf[512];

        for (;;) {
                if (flash_callbacks_cancelled(&s->cb))
                        return -ECANCELED;
                uint64_t now = now_usec(CLOCK_MONOTONIC);
                if (now >= end)
                        return -ETIMEDOUT;
                ssize_t n = serial_transport_read(s->transport, buf, sizeof(buf),
                                                  MIN(end - now, (uint64_t)CANCEL_SLICE_USEC));
                if (n == -ETIMEDOUT)
                        continue;
                if (n < 0)
                        return (int)n;
                for (ssize_t i = 0; i < n; i++) {
                        int r = fn(s, buf[i], userdata);
                        if (r != 0)
                                return r > 0 ? 0 : r;
                }
        }
}

static int pause_usec(AvrSession *s, uint64_t usec)
{
        uint64_t end = now_usec(CLOCK_MONOTONIC) + usec;
        for (;;) {
                if (flash_callbacks_cancelled(&s->cb))
                        return -ECANCELED;
                uint64_t n = now_usec(CLOCK_MONOTONIC);
                if (n >= end)
                        return 0;
                uint64_t d = MIN(end - n, (uint64_t)CANCEL_SLICE_USEC);
                struct timespec ts = { .tv_sec = (time_t)(d / 1000000u),
                                       .tv_nsec = (long)(d % 1000000u) * 1000 };
                nanosleep(&ts, NULL);
        }
}

int avr_session_new(AvrSession **ret, SerialTransport *t, AvrProtocol protocol)
{
        AvrSession *s;

        if (!t || protocol < 0 || protocol >= _AVR_PROTOCOL_MAX)
                return -EINVAL;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->transport = t;
        s->protocol = protocol;
        s->ops = protocol == AVR_PROTOCOL_STK500V2 ? &stk500v2_session_ops : &stk500v1_session_ops;
        s->timeouts = avr_timeouts_default;
        *ret = s;
        return 0;
}

AvrSession *avr_session_free(AvrSession *s)
{
        free(s);
        return NULL;
}

void avr_session_set_timeouts(AvrSession *s, const AvrTimeouts *t)
{
        s->timeouts = *t;
}

AvrErase avr_session_erase_policy(const AvrSession *s)
{
        return s->ops->erase;
}

const AvrFlashStats *avr_session_get_stats(const AvrSession *s)
{
        return &s->stats;
}

int avr_image_check(size_t image_size, const AvrChip *chip, char **ret_message)
{
        char *m = NULL;
        int r = 0;

        if (chip->flash_size == 0 || chip->page_size == 0 || chip->boot_size >= chip->flash_size ||
            chip->flash_size % chip->page_size != 0) {
                r = -EINVAL;
                if (asprintf(&m, "the board database describes the %s's flash inconsistently", chip->mcu) <
                    0)
                        m = NULL;
        } else if (image_size == 0) {
                r = -EINVAL;
                if (asprintf(&m, "the image is empty") < 0)
                        m = NULL;
        } else if (image_size > chip->flash_size - chip->boot_size) {
                r = FLASH_ERR_BOOTLOADER_REGION;
                if (asprintf(&m,
                             "the image (%zu bytes) reaches into the %s's bootloader section at 0x%05" PRIx32
                             " (%" PRIu32 " bytes for the application): refused, nothing written; "
                             "build it for this board or without a bootloader offset",
                             image_size, chip->mcu, chip->flash_size - chip->boot_size,
                             chip->flash_size - chip->boot_size) < 0)
                        m = NULL;
        }
        if (ret_message)
                *ret_message = m;
        else
                free(m);
        return r;
}

static int drain_byte(AvrSession *s, uint8_t byte, void *userdata)
{
        *(bool *)userdata = true;
        return 0;
}

/* Read and drop until the line stayed quiet for quiet_usec (bounded). */
static int drain_quiet(AvrSession *s, uint64_t quiet_usec)
{
        for (unsigned i = 0; i < 20; i++) {
                bool got = false;
                int r = avr_session_receive(s, quiet_usec, drain_byte, &got);
                if (r == -ETIMEDOUT && !got)
                        return 0;
                if (r < 0 && r != -ETIMEDOUT)
                        return r;
        }
        return -EPROTO;
}

/* Reset into the bootloader and sync within its window. */
static int enter_bootloader(AvrSession *s)
{
        int r = -ETIMEDOUT;

        for (unsigned pulse = 0; pulse < MAX(s->timeouts.resets, 1u); pulse++) {
                if (s->opts.reset) {
                        r = s->opts.reset(s->opts.reset_userdata);
                        if (r < 0)
                                return fail(s, r, "could not pulse DTR/RTS to reset the board: %s",
                                            strerror(-r));
                        s->stats.resets++;
                        r = pause_usec(s, s->timeouts.settle_usec);
                        if (r < 0)
                                return fail(s, r, "cancelled while resetting the board");
                        (void)serial_transport_flush_input(s->transport);
                }
                s->ops->begin(s);
                for (unsigned i = 0; i < MAX(s->timeouts.sync_tries, 1u); i++) {
                        s->stats.syncs++;
                        r = s->ops->sync(s, s->timeouts.sync_usec);
                        if (r >= 0) {
                                /* answers to earlier tries may still be on
                                 * the way; STK500v1 has no sequence numbers
                                 * to tell them apart: a quiet line, then one
                                 * more sync that must answer */
                                r = drain_quiet(s, s->timeouts.settle_usec);
                                if (r >= 0)
                                        r = s->ops->sync(s, s->timeouts.sync_usec);
                        }
                        if (r >= 0) {
                                if (pulse > 0 || i > 0) {
                                        char note[128];
                                        snprintf(note, sizeof(note),
                                                 "the bootloader answered after %u reset(s) and %u sync(s)",
                                                 s->stats.resets, s->stats.syncs);
                                        flash_callbacks_note(&s->cb, note);
                                }
                                return 0;
                        }
                        if (r == -ENODEV || r == -ECANCELED)
                                return r == -ENODEV ? fail(s, r, "the board vanished while syncing")
                                                    : fail(s, r, "cancelled while syncing");
                        (void)serial_transport_flush_input(s->transport);
                }
                if (!s->opts.reset)
                        break;
        }
        return fail(s, FLASH_ERR_NO_BOOTLOADER,
                    "no %s bootloader answered after %u reset pulse(s) and %u sync attempt(s): check the "
                    "board has the Arduino bootloader and that DTR reaches its reset pin (or press reset "
                    "just before flashing)",
                    avr_protocol_to_string(s->protocol), s->stats.resets, s->stats.syncs);
}

static int page_read(AvrSession *s, uint32_t address, uint8_t *buf, size_t len)
{
        int r = s->ops->load_address(s, address);
        return r < 0 ? r : s->ops->read_flash(s, buf, len);
}

static int page_write(AvrSession *s, uint32_t address, const uint8_t *data, size_t len)
{
        int r = s->ops->load_address(s, address);
        return r < 0 ? r : s->ops->program_flash(s, data, len);
}

static int page_io_fail(AvrSession *s, int r, const char *what, uint32_t address)
{
        if (r == -ENODEV)
                return fail(s, r,
                            "the board vanished while %s the page at 0x%05" PRIx32
                            "; flash it again (its bootloader is still intact)",
                            what, address);
        if (r == -ECANCELED)
                return fail(s, r, "cancelled while %s the page at 0x%05" PRIx32, what, address);
        /* the bootloader starts the application after a second without
         * commands: a page that gets no answer most likely met that */
        if (r == -ETIMEDOUT)
                return fail(s, FLASH_ERR_NO_BOOTLOADER, "no answer while %s the page at 0x%05" PRIx32, what,
                            address);
        return fail(s, r, "the bootloader failed %s the page at 0x%05" PRIx32 ": %s", what, address,
                    strerror(-r));
}

static int flash_pages(AvrSession *s, const uint8_t *image, size_t size)
{
        const AvrChip *c = &s->opts.chip;
        uint32_t page = c->page_size;
        size_t n_pages = (size + page - 1) / page;
        size_t padded = n_pages * page;
        _cleanup_free_ uint8_t *want = NULL, *have = NULL;
        _cleanup_free_ bool *differs = NULL;
        size_t n_diff = 0;
        int r;

        want = malloc(padded);
        have = malloc(padded);
        differs = calloc(n_pages, sizeof(bool));
        if (!want || !have || !differs)
                return fail(s, -ENOMEM, "out of memory");
        memcpy(want, image, size);
        memset(want + size, 0xff, padded - size);

        /* What is there now: nothing changed means nothing to write. */
        flash_callbacks_phase(&s->cb, FLASH_PHASE_READ_BACK);
        for (size_t i = 0; i < n_pages; i++) {
                uint32_t a = (uint32_t)(i * page);
                r = page_read(s, a, have + a, page);
                if (r < 0)
                        return page_io_fail(s, r, "reading", a);
                s->stats.pages_read++;
                differs[i] = memcmp(have + a, want + a, page) != 0;
                n_diff += differs[i];
                flash_callbacks_progress(&s->cb, a + page, padded);
                /* one change means every page is written anyway: the rest
                 * of the read-back would only cost time */
                if (differs[i] && s->ops->erase == AVR_ERASE_SEQUENTIAL)
                        break;
        }
        if (n_diff == 0) {
                s->stats.pages_skipped = n_pages;
                return FLASH_RESULT_UNCHANGED;
        }

        flash_callbacks_phase(&s->cb, FLASH_PHASE_WRITE);
        for (size_t i = 0; i < n_pages; i++) {
                uint32_t a = (uint32_t)(i * page);
                /* see avr-session.h: the Mega's bootloader erases pages in
                 * sequence, so every page is written in order */
                if (s->ops->erase == AVR_ERASE_PAGE && !differs[i]) {
                        s->stats.pages_skipped++;
                        continue;
                }
                r = page_write(s, a, want + a, page);
                if (r < 0)
                        return page_io_fail(s, r, "writing", a);
                s->stats.pages_written++;
                flash_callbacks_progress(&s->cb, a + page, padded);
        }

        if (!s->opts.no_verify) {
                flash_callbacks_phase(&s->cb, FLASH_PHASE_VERIFY);
                for (size_t i = 0; i < n_pages; i++) {
                        uint32_t a = (uint32_t)(i * page);
                        r = page_read(s, a, have + a, page);
                        if (r < 0)
                                return page_io_fail(s, r, "verifying", a);
                        s->stats.pages_verified++;
                        if (memcmp(have + a, want + a, page) != 0) {
                                uint32_t off = 0;
                                while (have[a + off] == want[a + off])
                                        off++;
                                return fail(s, FLASH_ERR_VERIFY,
                                            "verify failed at 0x%05" PRIx32
                                            ": read 0x%02x, wrote 0x%02x; the application is damaged, "
                                            "flash it again",
                                            a + off, have[a + off], want[a + off]);
                        }
                        flash_callbacks_progress(&s->cb, a + page, padded);
                }
        }
        return FLASH_RESULT_DONE;
}

int avr_session_flash(AvrSession *s, const FlashImage *image, const AvrFlashOptions *opts,
                      const FlashCallbacks *cb, char **ret_message)
{
        const AvrChip *c = &opts->chip;
        _cleanup_free_ uint8_t *flat = NULL;
        size_t size = 0;
        int r;

        s->opts = *opts;
        s->cb = cb ? *cb : (FlashCallbacks){};
        s->stats = (AvrFlashStats){};
        s->error[0] = 0;

        /* flash content from address 0, gaps 0xFF; an empty image is left
         * to the check, which says so */
        if (flash_image_get_size(image) > 0) {
                r = flash_image_flatten(image, 0, &flat, &size);
                if (r == -EFBIG)
                        r = FLASH_ERR_BOOTLOADER_REGION;
                if (r < 0)
                        return codec_message(ret_message, r,
                                             "the image cannot be laid out from address 0: %s",
                                             strerror(-r));
        }
        r = avr_image_check(size, c, ret_message);
        if (r < 0)
                return r;

        r = enter_bootloader(s);
        if (r >= 0) {
                r = s->ops->signature(s, s->stats.signature);
                if (r < 0)
                        r = page_io_fail(s, r, "reading the signature before", 0);
                else if (memcmp(s->stats.signature, c->signature, 3) != 0)
                        r = fail(s, FLASH_ERR_MCU,
                                 "the chip's signature is %02x %02x %02x, not the %s's %02x %02x %02x: "
                                 "refused, nothing written; pick the board that matches this chip",
                                 s->stats.signature[0], s->stats.signature[1], s->stats.signature[2], c->mcu,
                                 c->signature[0], c->signature[1], c->signature[2]);
        }
        if (r >= 0)
                r = flash_pages(s, flat, size);

        if (r >= 0 && !opts->no_leave) {
                int k;
                flash_callbacks_phase(&s->cb, FLASH_PHASE_LEAVE);
                k = s->ops->leave(s);
                /* the application starts after the answer or the board's
                 * timeout anyway: a lost answer is not a failed flash */
                if (k == -ENODEV)
                        r = fail(s, k, "the board vanished while leaving the bootloader");
                else if (r == FLASH_RESULT_DONE)
                        r = FLASH_RESULT_LEFT;
        }

        if (ret_message) {
                char *m = NULL;
                if (r < 0)
                        m = strdup(s->error[0] ? s->error : strerror(-r));
                else if (r == FLASH_RESULT_UNCHANGED) {
                        if (asprintf(&m,
                                     "the %s already holds this image (%" PRIu64
                                     " pages compared): nothing written",
                                     c->mcu, s->stats.pages_read) < 0)
                                m = NULL;
                } else if (asprintf(&m,
                                    "%" PRIu64 " pages written and %" PRIu64
                                    " verified on the %s (signature %02x "
                                    "%02x %02x) through %s",
                                    s->stats.pages_written, s->stats.pages_verified, c->mcu,
                                    s->stats.signature[0], s->stats.signature[1], s->stats.signature[2],
                                    avr_protocol_to_string(s->protocol)) < 0)
                        m = NULL;
                *ret_message = m;
        }
        return r;
}
