/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The Katapult bootloader as a tty mode of a virtual board: a CDC-ACM tty
 * with 1d50:6177, manufacturer "katapult", product the MCU (usb-device.c),
 * on the same port path the Klipper tty had. The protocol itself is the
 * pure KatapultModel (katapult-model.c) over the board's flash; this file
 * is the glue to the TtyModel interface (tty-port.h).
 *
 * - The application start is the board's flash base + app offset; the
 *   block size is Katapult's default for these parts, 64 bytes.
 * - COMPLETE: Katapult ACKs and jumps to the application ~100 ms later
 *   (src/flashcmd.c complete_task); the board re-enumerates as Klipper
 *   when the image is plausible, else comes back in Katapult.
 * - Quirks: katapult-corrupt (every 7th reply frame damaged),
 *   katapult-nack (every 5th command NACKed), katapult-busy (every 4th
 *   command answered BUSY), katapult-slow (each reply 20 ms late), and
 *   unplug=N[,MS] (off the bus after the Nth block written).
 */

#include <inttypes.h>
#include <stdlib.h>

#include "katapult-model.h"
#include "tty-port.h"

#define KATAPULT_VBOARD_BLOCK_SIZE 64
#define KATAPULT_COMPLETE_DELAY_US (100u * 1000u)
#define KATAPULT_SLOW_REPLY_US     (20u * 1000u)

typedef struct KatapultTty {
        KatapultModel *model;
        bool leaving;
        bool gone; /* unplugged: ignore everything until detach */
} KatapultTty;

static int katapult_attach(VBoard *b, void **ret_state)
{
        const BoardVariant *v = b->variant;
        KatapultTty *k;
        int r;

        k = calloc(1, sizeof(*k));
        if (!k)
                return -ENOMEM;

        KatapultModelConfig cfg = {
                .start_address = v->flash_base + v->app_offset,
                .block_size = KATAPULT_VBOARD_BLOCK_SIZE,
                .mcu = v->mcu,
                .version = "v0.0.1-vboard",
                .quirks = {
                        .corrupt_every = b->quirks[QUIRK_KATAPULT_CORRUPT] ? 7 : 0,
                        .nack_every = b->quirks[QUIRK_KATAPULT_NACK] ? 5 : 0,
                        .busy_every = b->quirks[QUIRK_KATAPULT_BUSY] ? 4 : 0,
                        .reply_delay_us = b->quirks[QUIRK_KATAPULT_SLOW] ? KATAPULT_SLOW_REPLY_US : 0,
                },
        };
        r = katapult_model_new(&k->model, b->flash, &cfg);
        if (r < 0) {
                free(k);
                vboard_event(b, "error", "cannot start Katapult at 0x%08x", cfg.start_address);
                return r;
        }
        vboard_event(b, "katapult", "application at 0x%08x, %u-byte blocks, mcu %s", cfg.start_address,
                     cfg.block_size, v->mcu);
        *ret_state = k;
        return 0;
}

static void katapult_detach(VBoard *b, void *state)
{
        KatapultTty *k = state;

        if (!k)
                return;
        const KatapultModelStats *st = katapult_model_get_stats(k->model);
        vboard_event(b, "katapult-stats",
                     "%" PRIu64 " commands, %" PRIu64 " blocks written, %" PRIu64 " read, %" PRIu64
                     " sectors erased, %" PRIu64 " nacks, %" PRIu64 " busy, %" PRIu64 " corrupted",
                     st->commands, st->blocks_written, st->blocks_read, st->sectors_erased, st->nacks,
                     st->busies, st->corrupted);
        katapult_model_free(k->model);
        free(k);
}

static void katapult_on_data(VBoard *b, void *state, const uint8_t *data, size_t len)
{
        KatapultTty *k = state;
        uint8_t out[4096];
        uint64_t delay;
        size_t n;

        if (!k || k->gone || k->leaving)
                return;
        katapult_model_feed(k->model, data, len);

        const KatapultModelStats *st = katapult_model_get_stats(k->model);
        if (b->quirks[QUIRK_UNPLUG] && st->blocks_written >= b->unplug_after_blocks) {
                /* cable pulled right after the Nth block: no answer to it */
                k->gone = true;
                b->unplugs++;
                vboard_event(b, "unplug", "after %" PRIu64 " Katapult blocks", st->blocks_written);
                vboard_schedule(b, 0, b->unplug_replug_ms >= 0 ? (BoardMode)-1 : BOARD_MODE_OFF,
                                b->unplug_replug_ms >= 0 ? (uint64_t)b->unplug_replug_ms * 1000 : 0,
                                "unplug quirk");
                return;
        }

        while ((n = katapult_model_take_output(k->model, out, sizeof(out), &delay)) > 0) {
                if (delay > 0)
                        /* A slow device, modelled on the spot: the loop
                         * stalls for this board's reply only briefly. */
                        g_usleep((gulong)delay);
                tty_port_write(b, out, n);
        }

        if (katapult_model_completed(k->model)) {
                k->leaving = true;
                bool plausible = vboard_app_plausible(b);
                vboard_event(b, "katapult-complete", "%s",
                             plausible ? "starting the application"
                                       : "no plausible application: staying in Katapult");
                vboard_schedule(b, KATAPULT_COMPLETE_DELAY_US,
                                plausible ? BOARD_MODE_APP : BOARD_MODE_KATAPULT,
                                timing_reenumerate_us(&b->world->timing), "Katapult COMPLETE");
        }
}

static void katapult_on_line(VBoard *b, void *state, uint32_t baud, bool dtr)
{
        /* Katapult ignores the line coding (no 1200-baud trick in the bootloader). */
}

const TtyModel katapult_tty_model = {
        .name = "katapult",
        .mode = BOARD_MODE_KATAPULT,
        .attach = katapult_attach,
        .detach = katapult_detach,
        .on_data = katapult_on_data,
        .on_line = katapult_on_line,
};
