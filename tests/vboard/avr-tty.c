/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * An AVR board as its USB-serial tty shows it (a Mega's 16U2 or a CH340
 * face, one tty that never re-enumerates): the MCU is libsimavr running
 * the real bootloader hex from arduino-core-avr (avr-sim.c).
 *
 * - DTR wired to reset: a rising DTR (TIOCMBIS/TIOCMSET on the emulated
 *   tty, the Arduino auto-reset) restarts the core at the boot section;
 *   the bootloader listens for about a second, in simulated cycles.
 * - When the bootloader jumps to the application, the board runs the
 *   application model: Klipper's face as the other boards' app mode
 *   (klipper-tty.c, bytes counted and dropped); the vboard mode stays
 *   `app` throughout, since the USB side does not change.
 * - Flash: the simulator's own array; b->flash (what `dump` and --dump
 *   read, from address 0, the bootloader at the top included) is brought
 *   up to date when the application starts and when the board powers
 *   down, so a dump taken while the bootloader runs shows the flash before
 *   this session.
 * - Quirks: unplug=N[,MS] (off the bus right after the Nth STK500v2
 *   program command), avr-miss-reset (the first reset pulse after each
 *   power-up does not reach the chip, as with a slow or missing
 *   auto-reset capacitor).
 */

#include <stdlib.h>
#include <string.h>

#include "avr-sim.h"
#include "avr-tty.h"
#include "tty-port.h"

#define AVR_FREQUENCY           16000000u
#define AVR_BOOTLOADERS_DEFAULT "/usr/share/arduino/hardware/arduino/avr/bootloaders"

typedef struct AvrBoard {
        VBoard *b;
        AvrSim *sim;
        bool live; /* the tty mode is attached: bytes out reach the tty */
        bool dtr;
        bool gone;
        unsigned missed_resets;
        uint64_t programs_at_power_up;
} AvrBoard;

bool avr_board_wanted(const Board *bd)
{
        return bd->bootloader == BOARD_BOOTLOADER_STK500V2 || bd->bootloader == BOARD_BOOTLOADER_STK500V1;
}

static const char *bootloader_hex(const VBoard *b)
{
        if (streq(b->variant->mcu, "atmega2560") && b->db_board->bootloader == BOARD_BOOTLOADER_STK500V2)
                return "stk500v2/stk500boot_v2_mega2560.hex";
        if (streq(b->variant->mcu, "atmega328p") && b->db_board->bootloader == BOARD_BOOTLOADER_STK500V1)
                return "optiboot/optiboot_atmega328.hex";
        return NULL;
}

static void on_output(void *userdata, const uint8_t *data, size_t len)
{
        AvrBoard *a = userdata;
        World *w = a->b->world;

        g_mutex_lock(&w->lock);
        if (a->live && !a->gone)
                tty_port_write(a->b, data, len);
        g_mutex_unlock(&w->lock);
}

static void on_state(void *userdata, AvrSimState st)
{
        AvrBoard *a = userdata;
        World *w = a->b->world;

        g_mutex_lock(&w->lock);
        if (st == AVR_SIM_APP) {
                avr_board_sync_flash(a->b);
                vboard_event(a->b, "avr-app", "the bootloader started the application");
        }
        g_mutex_unlock(&w->lock);
}

int avr_board_new(VBoard *b)
{
        const BoardVariant *v = b->variant;
        const char *dir = g_getenv("VBOARD_AVR_BOOTLOADERS") ?: AVR_BOOTLOADERS_DEFAULT;
        const char *hex = bootloader_hex(b);
        AvrBoard *a;
        int r;

        if (!hex || !v->avr.present)
                return -EOPNOTSUPP;
        a = g_new0(AvrBoard, 1);
        a->b = b;
        a->dtr = true;
        g_autofree char *path = g_build_filename(dir, hex, NULL);
        AvrSimConfig cfg = {
                .mcu = v->mcu,
                .frequency = AVR_FREQUENCY,
                .bootloader_hex = path,
                .boot_address = v->flash_size - v->avr.boot_size,
                .speed = 1.0,
        };
        AvrSimCallbacks cb = { .output = on_output, .state_changed = on_state, .userdata = a };
        r = avr_sim_new(&a->sim, &cfg, &cb);
        if (r < 0) {
                g_printerr("vboard: cannot run %s in simavr (%s): %s\n", path, v->mcu, g_strerror(-r));
                g_free(a);
                return r;
        }
        if (avr_sim_flash_size(a->sim) != v->flash_size) {
                avr_sim_free(a->sim);
                g_free(a);
                return -EINVAL;
        }
        /* the board's flash holds the bootloader as shipped */
        g_autofree uint8_t *buf = g_malloc(v->flash_size);
        avr_sim_read_flash(a->sim, 0, buf, v->flash_size);
        flash_model_load(b->flash, 0, buf, v->flash_size);
        b->avr = a;
        return 0;
}

void avr_board_free(VBoard *b)
{
        AvrBoard *a = b->avr;

        if (!a)
                return;
        /* joins the simulation thread, whose callbacks take the lock */
        avr_sim_free(a->sim);
        g_free(a);
        b->avr = NULL;
}

void avr_board_sync_flash(VBoard *b)
{
        AvrBoard *a = b->avr;
        const BoardVariant *v = b->variant;

        if (!a)
                return;
        g_autofree uint8_t *buf = g_malloc(v->flash_size);
        if (avr_sim_read_flash(a->sim, 0, buf, v->flash_size) == 0)
                flash_model_load(b->flash, 0, buf, v->flash_size);
}

void avr_board_add_stats(VBoard *b, json_t *c)
{
        if (!b->avr)
                return;
        AvrSimStats st = avr_sim_get_stats(b->avr->sim);
        json_object_set_new(c, "avr_resets", json_integer((json_int_t)st.resets));
        json_object_set_new(c, "avr_app_starts", json_integer((json_int_t)st.app_starts));
        json_object_set_new(c, "avr_program_commands", json_integer((json_int_t)st.v2_program_commands));
        json_object_set_new(c, "avr_bytes_in", json_integer((json_int_t)st.bytes_in));
        json_object_set_new(c, "avr_bytes_out", json_integer((json_int_t)st.bytes_out));
}

/* --flash images and earlier dumps live in b->flash while the board is off */
static void load_sim_flash(VBoard *b)
{
        AvrBoard *a = b->avr;
        uint32_t app = b->variant->flash_size - b->variant->avr.boot_size;
        g_autofree uint8_t *buf = g_malloc(app);

        if (flash_model_read(b->flash, 0, buf, app) == 0)
                avr_sim_load_flash(a->sim, 0, buf, app);
}

static int avr_attach(VBoard *b, void **ret_state)
{
        AvrBoard *a = b->avr;

        if (!a)
                return -EOPNOTSUPP;
        load_sim_flash(b);
        a->live = true;
        a->gone = false;
        a->dtr = true;
        a->missed_resets = 0;
        a->programs_at_power_up = avr_sim_get_stats(a->sim).v2_program_commands;
        /* power-on: the bootloader's window has passed by the time a host
         * sees the tty; an erased chip runs into the bootloader for good */
        if (vboard_app_plausible(b))
                vboard_event(b, "avr", "%s running the application", b->variant->mcu);
        else {
                avr_sim_reset(a->sim);
                vboard_event(b, "avr", "%s: no application, the bootloader runs", b->variant->mcu);
        }
        *ret_state = a;
        return 0;
}

static void avr_detach(VBoard *b, void *state)
{
        AvrBoard *a = state;

        if (!a)
                return;
        a->live = false;
        avr_sim_halt(a->sim);
        avr_board_sync_flash(b);
        AvrSimStats st = avr_sim_get_stats(a->sim);
        vboard_event(b, "avr-stats",
                     "%" G_GUINT64_FORMAT " resets, %" G_GUINT64_FORMAT
                     " application starts, %" G_GUINT64_FORMAT " STK500v2 messages, %" G_GUINT64_FORMAT
                     " program commands, %" G_GUINT64_FORMAT " bytes in, %" G_GUINT64_FORMAT " out",
                     st.resets, st.app_starts, st.v2_messages, st.v2_program_commands, st.bytes_in,
                     st.bytes_out);
}

static void avr_on_data(VBoard *b, void *state, const uint8_t *data, size_t len)
{
        AvrBoard *a = state;

        if (!a || a->gone)
                return;
        avr_sim_input(a->sim, data, len);
        uint64_t programs = avr_sim_get_stats(a->sim).v2_program_commands - a->programs_at_power_up;
        if (b->quirks[QUIRK_UNPLUG] && programs >= b->unplug_after_blocks) {
                a->gone = true;
                b->unplugs++;
                vboard_event(b, "unplug", "after %" G_GUINT64_FORMAT " program commands", programs);
                vboard_schedule(b, 0, b->unplug_replug_ms >= 0 ? (BoardMode)-1 : BOARD_MODE_OFF,
                                b->unplug_replug_ms >= 0 ? (uint64_t)b->unplug_replug_ms * 1000 : 0,
                                "unplug quirk");
        }
}

static void avr_on_line(VBoard *b, void *state, uint32_t baud, bool dtr)
{
        AvrBoard *a = state;

        if (!a || a->gone)
                return;
        bool rising = dtr && !a->dtr;
        a->dtr = dtr;
        if (!rising)
                return;
        if (b->quirks[QUIRK_AVR_MISS_RESET] && a->missed_resets == 0) {
                a->missed_resets++;
                vboard_event(b, "avr-reset", "DTR pulse missed the chip (avr-miss-reset)");
                return;
        }
        vboard_event(b, "avr-reset", "DTR pulse: %s bootloader",
                     board_bootloader_to_string(b->db_board->bootloader));
        avr_sim_reset(a->sim);
}

const TtyModel avr_tty_model = {
        .name = "avr",
        .mode = BOARD_MODE_APP,
        .attach = avr_attach,
        .detach = avr_detach,
        .on_data = avr_on_data,
        .on_line = avr_on_line,
};
