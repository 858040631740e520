/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * An AVR that runs its real bootloader: libsimavr's core on a thread of its
 * own, throttled to real time (the bootloaders' entry windows are counted
 * in CPU cycles), UART0 bridged to callbacks.
 *
 * - Reset (the Arduino auto-reset: DTR through a capacitor) starts the core
 *   at the bootloader (BOOTRST), as the fuses on these boards say.
 * - When the bootloader jumps below its own section it has started the
 *   application. Test images are not AVR code, so the core stops there and
 *   the board is "in the application" (AVR_SIM_APP) until the next reset;
 *   an erased word at 0 (0xFFFF) runs through erased flash into the
 *   bootloader on a real chip, so the core restarts at the bootloader.
 * - Input bytes queue and enter the UART's receive FIFO while it has room
 *   (UART_IRQ_OUT_XON/XOFF), so nothing is dropped by the model itself.
 *
 * Callbacks run on the simulation thread without the simulator's lock, so
 * they may call back into it.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct AvrSim AvrSim;

typedef enum AvrSimState {
        AVR_SIM_HALTED,     /* not started / stopped */
        AVR_SIM_BOOTLOADER, /* the core runs (the bootloader, after a reset) */
        AVR_SIM_APP,        /* the bootloader started the application */
        _AVR_SIM_STATE_MAX,
} AvrSimState;

const char *avr_sim_state_to_string(AvrSimState s);

typedef struct AvrSimConfig {
        const char *mcu;            /* simavr's name: "atmega2560", "atmega328p" */
        uint32_t frequency;         /* Hz */
        const char *bootloader_hex; /* Intel HEX of the bootloader */
        uint32_t boot_address;      /* byte address of the boot section (BOOTRST) */
        double speed;               /* simulated / wall time; 1.0 = the real chip */
} AvrSimConfig;

typedef struct AvrSimCallbacks {
        /* bytes the AVR sent on UART0 */
        void (*output)(void *userdata, const uint8_t *data, size_t len);
        void (*state_changed)(void *userdata, AvrSimState state);
        void *userdata;
} AvrSimCallbacks;

typedef struct AvrSimStats {
        uint64_t resets;
        uint64_t app_starts;
        uint64_t bytes_in, bytes_out;
        uint64_t v2_program_commands; /* STK500v2 PROGRAM_FLASH_ISP seen on the input */
        uint64_t v2_messages;
} AvrSimStats;

/* Loads the bootloader and starts the thread; the board starts in
 * AVR_SIM_APP (powered, the application running) unless reset. */
int avr_sim_new(AvrSim **ret, const AvrSimConfig *cfg, const AvrSimCallbacks *cb);
AvrSim *avr_sim_free(AvrSim *s);

void avr_sim_input(AvrSim *s, const uint8_t *data, size_t len);
/* The reset pulse: input still queued is dropped, the core restarts at the
 * boot section. */
void avr_sim_reset(AvrSim *s);
/* Stop the core (power off); avr_sim_reset() starts it again. */
void avr_sim_halt(AvrSim *s);
AvrSimState avr_sim_get_state(AvrSim *s);
AvrSimStats avr_sim_get_stats(AvrSim *s);

uint32_t avr_sim_flash_size(AvrSim *s);
/* Flash access (copies, under the simulator's lock); -ERANGE outside. */
int avr_sim_read_flash(AvrSim *s, uint32_t address, void *buf, size_t len);
int avr_sim_load_flash(AvrSim *s, uint32_t address, const void *data, size_t len);
