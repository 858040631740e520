/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <strings.h>
#include <time.h>

#include "util/macros.h"
#include "serial/katapult-session.h"
#include "util/time-util.h"

/* Poll the cancel flag at least this often while waiting. */
#define CANCEL_SLICE_USEC (100u * 1000u)
/* An invalid command code for priming (flashtool.py uses 0x90). */
#define PRIME_COMMAND 0x90

const KatapultTimeouts katapult_timeouts_default = {
        .reply_usec = 2u * 1000u * 1000u,
        .block_reply_usec = 5u * 1000u * 1000u,
        .quiet_usec = 100u * 1000u,
        .retry_delay_usec = 500u * 1000u,
        .busy_delay_usec = 1500u * 1000u,
        .tries = 5,
};

struct KatapultSession {
        SerialTransport *transport;
        FlashCallbacks cb;
        KatapultTimeouts timeouts;
        KatapultDecoder decoder;
        bool prime;
        bool connected;
        KatapultConnectInfo info;
        KatapultFlashStats stats;
        char error[512];
        uint8_t frame[KATAPULT_FRAME_MAX];
        uint8_t reply[KATAPULT_PAYLOAD_MAX];
        size_t reply_size;
};

_printf_(3, 4) static int fail(KatapultSession *s, int r, const char *format, ...)
{
        va_list ap;
        va_start(ap, format);
        vsnprintf(s->error, sizeof(s->error), format, ap);
        va_end(ap);
        return r;
}

static bool cancelled(KatapultSession *s)
{
        return flash_callbacks_cancelled(&s->cb);
}

/* Sleep in slices so cancellation is noticed. */
static int pause_usec(KatapultSession *s, uint64_t usec)
{
        uint64_t end = now_usec(CLOCK_MONOTONIC) + usec;
        for (;;) {
                if (cancelled(s))
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

int katapult_session_new(KatapultSession **ret, SerialTransport *t)
{
        KatapultSession *s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->transport = t;
        s->timeouts = katapult_timeouts_default;
        katapult_decoder_init(&s->decoder);
        *ret = s;
        return 0;
}

KatapultSession *katapult_session_free(KatapultSession *s)
{
        free(s);
        return NULL;
}

static void use_callbacks(KatapultSession *s, const FlashCallbacks *cb)
{
        s->cb = cb ? *cb : (FlashCallbacks){};
}

void katapult_session_set_timeouts(KatapultSession *s, const KatapultTimeouts *t)
{
        s->timeouts = t ? *t : katapult_timeouts_default;
        if (s->timeouts.tries == 0)
                s->timeouts.tries = 1;
}

void katapult_session_set_prime(KatapultSession *s, bool prime)
{
        s->prime = prime;
}

bool katapult_mcu_needs_prime(const char *usb_product)
{
        /* flashtool.py _has_double_buffering(): STM32 parts with the USB FS
         * (double buffered) peripheral, i.e. all but F2, F4 and H7. */
        if (!usb_product || strncasecmp(usb_product, "stm32", 5) != 0)
                return false;
        const char *v = usb_product + 5;
        return !(strncasecmp(v, "f2", 2) == 0 || strncasecmp(v, "f4", 2) == 0 ||
                 strncasecmp(v, "h7", 2) == 0);
}

const KatapultFlashStats *katapult_session_get_stats(const KatapultSession *s)
{
        return &s->stats;
}

const KatapultConnectInfo *katapult_session_get_info(const KatapultSession *s)
{
        return s->connected ? &s->info : NULL;
}

const char *katapult_session_get_error(const KatapultSession *s)
{
        return s->error[0] ? s->error : NULL;
}

/* Hand the message out: the error after a failure, else `summary`. */
static int finish(KatapultSession *s, int r, char **ret_message, const char *summary)
{
        if (ret_message) {
                const char *m = r < 0 ? s->error : summary;
                *ret_message = m && m[0] ? strdup(m) : NULL;
        }
        return r;
}

static void phase(KatapultSession *s, FlashPhase p)
{
        flash_callbacks_phase(&s->cb, p);
}

static void progress(KatapultSession *s, uint64_t done, uint64_t total)
{
        flash_callbacks_progress(&s->cb, done, total);
}

_printf_(2, 3) static void note(KatapultSession *s, const char *format, ...)
{
        char buf[256];
        va_list ap;

        if (!s->cb.note)
                return;
        va_start(ap, format);
        vsnprintf(buf, sizeof(buf), format, ap);
        va_end(ap);
        flash_callbacks_note(&s->cb, buf);
}

typedef enum Outcome {
        OUTCOME_OK,     /* reply in s->reply */
        OUTCOME_RESEND, /* corrupted or no answer: send again */
        OUTCOME_NACK,   /* NACK: the device did not understand the frame; send again */
        OUTCOME_BUSY,   /* BUSY: send again after a longer pause */
        OUTCOME_ERROR,  /* the bootloader answered ERROR */
} Outcome;

/*
 * Wait for the ACK of `cmd` (for blocks also echoing `address`). Stale
 * replies (ACKs of earlier commands or blocks, which a resend can produce)
 * are skipped. Returns an Outcome >= 0 or a negative errno (-ENODEV,
 * -ECANCELED).
 */
static int await_reply(KatapultSession *s, uint8_t cmd, bool check_address, uint32_t address,
                       uint64_t timeout, bool *ignore_error)
{
        uint64_t deadline = now_usec(CLOCK_MONOTONIC) + timeout;
        uint64_t last_rx = now_usec(CLOCK_MONOTONIC);
        uint64_t dropped_before = s->decoder.n_bad + s->decoder.n_skipped;
        /* After next() has returned 0 at most one partial frame is buffered,
         * so this much always fits into the decoder. */
        uint8_t buf[KATAPULT_FRAME_MAX];

        for (;;) {
                KatapultFrame f;
                while (katapult_decoder_next(&s->decoder, &f) > 0) {
                        const uint8_t *data;
                        size_t size;
                        int r = katapult_ack_parse(&f, cmd, &data, &size);
                        if (r == -EAGAIN)
                                return f.cmd == KATAPULT_REPLY_BUSY ? OUTCOME_BUSY : OUTCOME_NACK;
                        if (r == -EREMOTEIO) {
                                if (ignore_error && *ignore_error) {
                                        /* the answer to the priming command */
                                        *ignore_error = false;
                                        continue;
                                }
                                return OUTCOME_ERROR;
                        }
                        if (r < 0)
                                continue; /* stale ACK of another command, or an unknown code */
                        if (check_address && (size < 4 || katapult_get_le32(data) != address))
                                continue; /* stale ACK of an earlier block */
                        memcpy(s->reply, data, size);
                        s->reply_size = size;
                        return OUTCOME_OK;
                }

                if (cancelled(s))
                        return -ECANCELED;

                uint64_t n = now_usec(CLOCK_MONOTONIC);
                if (n >= deadline)
                        return OUTCOME_RESEND;
                /* A corrupted reply leaves bytes that never become a frame;
                 * once the line has been quiet for a moment, resend instead
                 * of waiting out the whole timeout. */
                bool pending =
                        s->decoder.len > 0 || s->decoder.n_bad + s->decoder.n_skipped != dropped_before;
                if (pending && n - last_rx >= s->timeouts.quiet_usec)
                        return OUTCOME_RESEND;
                uint64_t wait = MIN(deadline - n, (uint64_t)CANCEL_SLICE_USEC);
                if (pending)
                        wait = MIN(wait, s->timeouts.quiet_usec - (n - last_rx));

                ssize_t k = serial_transport_read(s->transport, buf, sizeof(buf), wait);
                if (k == -ETIMEDOUT)
                        continue;
                if (k < 0)
                        return (int)k;
                last_rx = now_usec(CLOCK_MONOTONIC);
                size_t taken = katapult_decoder_feed(&s->decoder, buf, (size_t)k);
                if (taken < (size_t)k)
                        return -ENOBUFS; /* cannot happen, see buf above */
        }
}

/*
 * Send `cmd` and wait for its ACK, resending on NACK, BUSY, corruption and
 * silence up to `tries` times. On success the ACK's data (after the echoed
 * command word) is in s->reply.
 */
static int exchange(KatapultSession *s, uint8_t cmd, const void *payload, size_t size, bool check_address,
                    uint32_t address, uint64_t timeout, bool *ignore_error)
{
        int len, r;
        Outcome last = OUTCOME_RESEND;

        len = katapult_frame_encode(cmd, payload, size, s->frame, sizeof(s->frame));
        if (len < 0)
                return len;

        for (unsigned attempt = 0; attempt < s->timeouts.tries; attempt++) {
                if (cancelled(s))
                        return -ECANCELED;
                if (attempt > 0) {
                        s->stats.resends++;
                        r = pause_usec(s, last == OUTCOME_BUSY ? s->timeouts.busy_delay_usec
                                                               : s->timeouts.retry_delay_usec);
                        if (r < 0)
                                return r;
                        /* Stale bytes (late answers, broken frames) must not
                         * be taken for the answer to the resend. */
                        r = serial_transport_flush_input(s->transport);
                        if (r == -ENODEV)
                                return r;
                        katapult_decoder_reset(&s->decoder);
                }

                r = serial_transport_write(s->transport, s->frame, (size_t)len, timeout);
                if (r == -ETIMEDOUT) {
                        last = OUTCOME_RESEND;
                        continue;
                }
                if (r < 0)
                        return r;

                r = await_reply(s, cmd, check_address, address, timeout, ignore_error);
                if (r < 0)
                        return r;
                if (r == OUTCOME_OK)
                        return 0;
                last = (Outcome)r;
                if (last == OUTCOME_BUSY)
                        s->stats.busies++;
                else if (last == OUTCOME_ERROR)
                        s->stats.errors++;
                else if (last == OUTCOME_NACK)
                        s->stats.nacks++;
                else
                        s->stats.timeouts++; /* corruption or silence */
        }

        return last == OUTCOME_ERROR ? FLASH_ERR_REMOTE : last == OUTCOME_BUSY ? -EBUSY : -ETIMEDOUT;
}

static int exchange_error(KatapultSession *s, int r, const char *what)
{
        switch (r) {
        case -ENODEV:
                return fail(s, r,
                            "the board disappeared during %s (unplugged or reset); it stays in Katapult "
                            "until it is flashed: plug it in and retry",
                            what);
        case -ECANCELED:
                return fail(s, r, "cancelled during %s", what);
        case -ETIMEDOUT:
                return fail(s, r,
                            "no valid answer from Katapult to %s after %u tries; check the cable and "
                            "that the board is in Katapult",
                            what, s->timeouts.tries);
        case FLASH_ERR_REMOTE:
                return fail(s, r, "Katapult reported an error for %s %u times", what, s->timeouts.tries);
        case -EBUSY:
                return fail(s, -ETIMEDOUT, "Katapult stayed busy during %s after %u tries", what,
                            s->timeouts.tries);
        default:
                return fail(s, r, "%s failed: %s", what, strerror(-r));
        }
}

static int do_connect(KatapultSession *s)
{
        bool ignore_error = false;
        char v[16];
        int r;

        if (s->connected)
                return 0;

        r = serial_transport_flush_input(s->transport);
        if (r == -ENODEV)
                return exchange_error(s, r, "CONNECT");
        katapult_decoder_reset(&s->decoder);

        if (s->prime) {
                int len = katapult_frame_encode(PRIME_COMMAND, NULL, 0, s->frame, sizeof(s->frame));
                r = serial_transport_write(s->transport, s->frame, (size_t)len, s->timeouts.reply_usec);
                if (r < 0 && r != -ETIMEDOUT)
                        return exchange_error(s, r, "CONNECT");
                ignore_error = r == 0;
        }

        r = exchange(s, KATAPULT_CMD_CONNECT, NULL, 0, false, 0, s->timeouts.reply_usec, &ignore_error);
        if (r < 0)
                return exchange_error(s, r, "CONNECT");

        /* Rebuild the ACK frame view for the parser (s->reply holds the
         * data after the echoed command word). */
        uint8_t *payload = s->frame;
        katapult_put_le32(payload, KATAPULT_CMD_CONNECT);
        memcpy(payload + 4, s->reply, s->reply_size);
        KatapultFrame f = { .cmd = KATAPULT_REPLY_ACK, .payload = payload, .size = s->reply_size + 4 };
        r = katapult_connect_parse(&f, &s->info);
        if (r == -ERANGE)
                return fail(s, -EPROTO,
                            "Katapult reported block size %u; only 64, 128, 256 and 512 are valid",
                            katapult_get_le32(s->reply + 8));
        if (r < 0)
                return fail(s, -EPROTO, "Katapult's answer to CONNECT is malformed (%s)", strerror(-r));

        s->connected = true;
        note(s, "Katapult %s%s%s on %s: application at 0x%08x, %u-byte blocks",
             katapult_proto_version_format(s->info.proto_version, v, sizeof(v)),
             s->info.software_version[0] ? " " : "", s->info.software_version, s->info.mcu,
             s->info.start_address, s->info.block_size);
        return 0;
}

int katapult_session_connect(KatapultSession *s, const FlashCallbacks *cb, KatapultConnectInfo *ret_info,
                             char **ret_message)
{
        int r;

        use_callbacks(s, cb);
        s->error[0] = 0;
        r = do_connect(s);
        if (r >= 0 && ret_info)
                *ret_info = s->info;
        return finish(s, r, ret_message, NULL);
}

static int do_check(KatapultSession *s, size_t image_size, const KatapultFlashOptions *opts)
{
        static const KatapultFlashOptions no_opts = {};
        int r;

        if (!opts)
                opts = &no_opts;
        r = do_connect(s);
        if (r < 0)
                return r;

        if (opts->image_address != 0 && opts->image_address != s->info.start_address) {
                if (!opts->force_address)
                        return fail(
                                s, FLASH_ERR_ADDRESS,
                                "the image is built to run at 0x%08x but Katapult on this board starts "
                                "applications at 0x%08x; rebuild it for the board's bootloader offset (or "
                                "force the address check if you know better); nothing was written",
                                opts->image_address, s->info.start_address);
                note(s, "forced: writing an image built for 0x%08x at 0x%08x", opts->image_address,
                     s->info.start_address);
        }

        if (opts->image_mcu && opts->image_mcu[0] && strcasecmp(opts->image_mcu, s->info.mcu) != 0) {
                if (!opts->force_mcu)
                        return fail(
                                s, FLASH_ERR_MCU,
                                "the image is built for %s but Katapult reports %s; build Klipper for this "
                                "MCU (or force the mcu check); nothing was written",
                                opts->image_mcu, s->info.mcu);
                note(s, "forced: writing an image built for %s to %s", opts->image_mcu, s->info.mcu);
        }

        if (image_size == 0)
                return fail(s, -EINVAL, "the image is empty");
        uint64_t blocks = DIV_ROUND_UP((uint64_t)image_size, s->info.block_size);
        if ((uint64_t)s->info.start_address + blocks * s->info.block_size > UINT32_MAX + 1ull)
                return fail(s, FLASH_ERR_TOO_BIG,
                            "the image (%zu bytes) does not fit above Katapult's application start 0x%08x",
                            image_size, s->info.start_address);
        return 0;
}

int katapult_session_check(KatapultSession *s, size_t image_size, const KatapultFlashOptions *opts,
                           const FlashCallbacks *cb, char **ret_message)
{
        use_callbacks(s, cb);
        s->error[0] = 0;
        return finish(s, do_check(s, image_size, opts), ret_message, NULL);
}

static void fill_block(const KatapultConnectInfo *info, const uint8_t *image, size_t size, uint64_t index,
                       uint8_t *out)
{
        uint64_t off = index * info->block_size;
        size_t n = (size_t)MIN((uint64_t)info->block_size, size - off);
        memcpy(out, image + off, n);
        /* Katapult protocol.md: pad the final block with 0xFF. */
        memset(out + n, 0xff, info->block_size - n);
}

static int do_complete(KatapultSession *s)
{
        int len, r;

        phase(s, FLASH_PHASE_LEAVE);
        len = katapult_frame_encode(KATAPULT_CMD_COMPLETE, NULL, 0, s->frame, sizeof(s->frame));
        for (unsigned attempt = 0; attempt < s->timeouts.tries; attempt++) {
                if (attempt > 0) {
                        s->stats.resends++;
                        r = pause_usec(s, s->timeouts.retry_delay_usec);
                        if (r < 0)
                                return exchange_error(s, r, "COMPLETE");
                        if (serial_transport_flush_input(s->transport) == -ENODEV)
                                return FLASH_RESULT_LEFT_DEVICE_GONE;
                        katapult_decoder_reset(&s->decoder);
                }
                r = serial_transport_write(s->transport, s->frame, (size_t)len, s->timeouts.reply_usec);
                if (r == -ENODEV)
                        /* Gone before we could say it: it reset by itself;
                         * the job confirms when Klipper is back. */
                        return FLASH_RESULT_LEFT_DEVICE_GONE;
                if (r < 0)
                        continue;
                r = await_reply(s, KATAPULT_CMD_COMPLETE, false, 0, s->timeouts.reply_usec, NULL);
                if (r == OUTCOME_OK)
                        return FLASH_RESULT_LEFT;
                if (r == -ENODEV)
                        /* The board jumps to the application ~100 ms after
                         * its ACK (Katapult flashcmd.c complete_task); over
                         * USB it may vanish before the ACK is read. */
                        return FLASH_RESULT_LEFT_DEVICE_GONE;
                if (r == -ECANCELED)
                        return exchange_error(s, r, "COMPLETE");
                if (r == OUTCOME_RESEND && attempt > 0)
                        /* Silent after a COMPLETE that it may have received:
                         * most likely running the application already. */
                        return FLASH_RESULT_LEFT_DEVICE_GONE;
        }
        return exchange_error(s, -ETIMEDOUT, "COMPLETE");
}

int katapult_session_get_canbus_id(KatapultSession *s, uint8_t ret_uuid[static 6], const FlashCallbacks *cb,
                                   char **ret_message)
{
        int r;

        use_callbacks(s, cb);
        s->error[0] = 0;
        r = do_connect(s);
        if (r >= 0) {
                r = exchange(s, KATAPULT_CMD_GET_CANBUS_ID, NULL, 0, false, 0, s->timeouts.reply_usec, NULL);
                if (r < 0)
                        r = exchange_error(s, r, "GET_CANBUS_ID");
                else if (s->reply_size < 6)
                        r = fail(s, -EPROTO,
                                 "Katapult's answer to GET_CANBUS_ID is %zu bytes, not 6 or more",
                                 s->reply_size);
                else
                        memcpy(ret_uuid, s->reply, 6);
        }
        return finish(s, r, ret_message, NULL);
}

int katapult_session_complete(KatapultSession *s, const FlashCallbacks *cb, char **ret_message)
{
        use_callbacks(s, cb);
        s->error[0] = 0;
        int r = do_complete(s);
        return finish(s, r, ret_message,
                      r == FLASH_RESULT_LEFT ? "Katapult acknowledged COMPLETE and starts the application"
                                             : "the board left Katapult");
}

/*
 * What Katapult guarantees when a flash is interrupted, and what the host can
 * add (Katapult src/flashcmd.c, src/stm32/flash.c, src/bootentry.c):
 *
 * - Katapult starts the application when the first word at its start
 *   address (the initial SP) is neither 0 nor 0xFFFFFFFF. It buffers
 *   nothing: each SEND_BLOCK is programmed at once.
 * - A block at the start of a flash page erases that page first (unless it
 *   is already erased, or the block is a retransmission); any other block
 *   must land on erased flash. The page size is not in the protocol.
 *
 * Sent in order, the first block, the vector table, is programmed first:
 * an interrupted flash then leaves a board that starts half an image.
 * Knowing the page size (from the board's layout, else from the MCU as
 * Katapult's own flash.c computes it), the host does better:
 * it first sends an all-0xFF first block, which makes Katapult erase the
 * first page and program nothing (all ones leave the cells erased), then
 * the other pages in order, and the first page last. Until that last page
 * the board has no vector table and stays in Katapult. The first block
 * cannot be written after the rest of its own page (it would erase the
 * page again), so while the first page itself is written (one page: 16 KiB
 * at an STM32F4's 32 KiB offset) an interruption still leaves a vector
 * table over an incomplete page; the verify after EOF and the job's retry
 * cover that window, not the bootloader.
 *
 * Programming all ones over erased flash and then the real data is fine
 * on flash without ECC (STM32F0/F1/F2/F4: bits are only cleared). Flash
 * with ECC (STM32G0/G4/H7/L4...) may program check bits for the all-ones
 * word, and a second programming could then fail; those keep the plain
 * order.
 */
static bool mcu_reprograms_erased(const char *mcu)
{
        static const char *const ok[] = { "stm32f0", "stm32f1", "stm32f2", "stm32f4" };

        for (size_t i = 0; i < ELEMENTSOF(ok); i++)
                if (strncasecmp(mcu, ok[i], strlen(ok[i])) == 0)
                        return true;
        return false;
}

/*
 * The erase unit at `address` as Katapult's stm32 flash.c computes it, for
 * a board the database does not name (a port path as the target). Too
 * large is safe (each real page inside is erased at its first block, in
 * order), too small is not; F0/F1 pages are 1 or 2 KiB, so 2 KiB.
 */
static uint32_t mcu_page_size(const char *mcu, uint32_t address)
{
        if (strncasecmp(mcu, "stm32f2", 7) == 0 || strncasecmp(mcu, "stm32f4", 7) == 0)
                return address < 0x08010000u   ? 16u * 1024u
                       : address < 0x08020000u ? 64u * 1024u
                                               : 128u * 1024u;
        if (strncasecmp(mcu, "stm32f0", 7) == 0 || strncasecmp(mcu, "stm32f1", 7) == 0)
                return 2u * 1024u;
        return 0;
}

/* Blocks in the first page when it can be written last, else 0. */
static uint64_t first_page_blocks(KatapultSession *s, uint64_t blocks, const KatapultFlashOptions *opts)
{
        const KatapultConnectInfo *info = &s->info;
        const DfuseSegment *seg = NULL;
        uint32_t start = 0, size = 0;

        if (blocks < 2)
                return 0;
        if (opts && opts->layout) {
                if (!dfuse_layout_find_sector(opts->layout, info->start_address, &seg, &start, &size) ||
                    start != info->start_address)
                        return 0;
        } else {
                size = mcu_page_size(info->mcu, info->start_address);
                if (size == 0 || info->start_address % size != 0)
                        return 0;
        }
        if (size == 0 || size % info->block_size != 0)
                return 0;
        if ((uint64_t)size / info->block_size >= blocks)
                return 0; /* the whole image is in the first page: nothing to reorder */
        if (!mcu_reprograms_erased(info->mcu)) {
                note(s,
                     "%s: blocks are written in order (the vector table cannot be kept out of the flash "
                     "until the end on this chip)",
                     info->mcu);
                return 0;
        }
        return size / info->block_size;
}

static int send_block(KatapultSession *s, uint32_t address, const uint8_t *data)
{
        uint8_t payload[4 + KATAPULT_BLOCK_SIZE_MAX];
        char what[64];
        int r;

        katapult_put_le32(payload, address);
        memcpy(payload + 4, data, s->info.block_size);
        r = exchange(s, KATAPULT_CMD_SEND_BLOCK, payload, 4 + s->info.block_size, true, address,
                     s->timeouts.block_reply_usec, NULL);
        if (r < 0) {
                snprintf(what, sizeof(what), "the write of the block at 0x%08x", address);
                return exchange_error(s, r, what);
        }
        return 0;
}

static int do_flash(KatapultSession *s, const uint8_t *img, size_t size, const KatapultFlashOptions *opts)
{
        uint8_t payload[4 + KATAPULT_BLOCK_SIZE_MAX];
        uint8_t block[KATAPULT_BLOCK_SIZE_MAX];
        char what[64];
        int r;

        r = do_check(s, size, opts);
        if (r < 0)
                return r;

        const KatapultConnectInfo *info = &s->info;
        uint64_t blocks = DIV_ROUND_UP((uint64_t)size, info->block_size);
        uint64_t first = first_page_blocks(s, blocks, opts);

        phase(s, FLASH_PHASE_WRITE);
        progress(s, 0, size);
        if (first > 0) {
                /* Erase the first page (see above): from here on no vector table. */
                memset(block, 0xff, info->block_size);
                r = send_block(s, info->start_address, block);
                if (r < 0)
                        return r;
        }
        for (uint64_t n = 0; n < blocks; n++) {
                /* with `first`: pages 1.. in order, then the first page */
                uint64_t i = first > 0 ? (first + n) % blocks : n;
                uint32_t address = info->start_address + (uint32_t)(i * info->block_size);

                fill_block(info, img, size, i, block);
                r = send_block(s, address, block);
                if (r < 0)
                        return r;
                s->stats.blocks_written++;
                progress(s, MIN((n + 1) * info->block_size, (uint64_t)size), size);
        }

        r = exchange(s, KATAPULT_CMD_EOF, NULL, 0, false, 0, s->timeouts.block_reply_usec, NULL);
        if (r < 0)
                return exchange_error(s, r, "EOF (the end of the write)");
        s->stats.pages_written = s->reply_size >= 4 ? katapult_get_le32(s->reply) : 0;

        if (!opts || !opts->no_verify) {
                phase(s, FLASH_PHASE_VERIFY);
                progress(s, 0, size);
                for (uint64_t i = 0; i < blocks; i++) {
                        uint32_t address = info->start_address + (uint32_t)(i * info->block_size);
                        uint8_t addr_le[4];
                        katapult_put_le32(addr_le, address);
                        r = exchange(s, KATAPULT_CMD_REQUEST_BLOCK, addr_le, 4, true, address,
                                     s->timeouts.reply_usec, NULL);
                        if (r < 0) {
                                snprintf(what, sizeof(what), "the read back of the block at 0x%08x",
                                         address);
                                return exchange_error(s, r, what);
                        }
                        if (s->reply_size != 4 + info->block_size)
                                return fail(
                                        s, -EPROTO,
                                        "Katapult returned %zu bytes for the block at 0x%08x, expected %u",
                                        s->reply_size - MIN(s->reply_size, (size_t)4), address,
                                        info->block_size);
                        fill_block(info, img, size, i, payload);
                        if (memcmp(payload, s->reply + 4, info->block_size) != 0) {
                                size_t k = 0;
                                while (payload[k] == s->reply[4 + k])
                                        k++;
                                return fail(s, FLASH_ERR_VERIFY,
                                            "verify failed: flash at 0x%08zx holds 0x%02x, the image "
                                            "0x%02x; the "
                                            "board stays in Katapult: flash again",
                                            (size_t)address + k, s->reply[4 + k], payload[k]);
                        }
                        s->stats.blocks_verified++;
                        progress(s, MIN((i + 1) * info->block_size, (uint64_t)size), size);
                }
        }

        if (opts && opts->no_complete)
                return FLASH_RESULT_DONE;
        return do_complete(s);
}

int katapult_session_flash(KatapultSession *s, const FlashImage *image, const KatapultFlashOptions *opts,
                           const FlashCallbacks *cb, char **ret_message)
{
        _cleanup_free_ uint8_t *flat = NULL;
        size_t size = 0;
        char summary[256];
        int r;

        use_callbacks(s, cb);
        s->error[0] = 0;
        s->stats = (KatapultFlashStats){};
        /* Katapult takes one byte stream from its application start; an
         * empty image is left to the check, which says so */
        if (flash_image_get_size(image) > 0) {
                r = flash_image_flatten(image, flash_image_get_address(image), &flat, &size);
                if (r < 0)
                        return finish(
                                s, fail(s, r, "the image cannot be laid out as one piece: %s", strerror(-r)),
                                ret_message, NULL);
        }
        r = do_flash(s, flat, size, opts);
        snprintf(summary, sizeof(summary), "wrote %zu bytes at 0x%08x in %" PRIu64 " blocks of %u%s%s%s",
                 size, s->info.start_address, s->stats.blocks_written, s->info.block_size,
                 s->stats.blocks_verified ? ", verified" : ", not verified",
                 r == FLASH_RESULT_LEFT               ? ", Katapult starts the application"
                 : r == FLASH_RESULT_LEFT_DEVICE_GONE ? ", the board reset to start the application"
                                                      : ", still in Katapult",
                 s->stats.resends ? " (some frames were sent again)" : "");
        return finish(s, r, ret_message, summary);
}
