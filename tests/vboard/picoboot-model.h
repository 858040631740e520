/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The RP2040 boot ROM's PICOBOOT interface (RP2040 datasheet 2.8.5) over
 * the QSPI flash (a FlashModel of 4 KiB sectors at 0x10000000), the
 * 264 KiB of SRAM and the ROM's first bytes. Pure: no I/O; the time is
 * passed in, the flash is owned by the caller.
 *
 * A command is a 32-byte packet on bulk OUT; READ then sends its data on
 * bulk IN and takes a zero-length OUT as acknowledgement, every other
 * command takes its data (WRITE) on bulk OUT and is acknowledged with a
 * zero-length IN. A command the ROM rejects (bad magic, unknown id, wrong
 * argument or transfer length, bad address or alignment), or a transfer
 * in the wrong direction, halts both endpoints: every bulk transfer then
 * stalls until the interface RESET control request; GET_COMMAND_STATUS
 * tells the last command's token, status and id. Flash work (erase 4 KiB,
 * program 256 bytes) takes the time timing.c says: the acknowledgement is
 * not ready before it is done (picoboot_model_busy_until()).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec/picoboot-proto.h"
#include "flash-model.h"
#include "timing.h"

typedef enum PicobootPhase {
        PICOBOOT_PHASE_COMMAND,  /* waiting for a command packet */
        PICOBOOT_PHASE_DATA_OUT, /* WRITE data */
        PICOBOOT_PHASE_DATA_IN,  /* READ data */
        PICOBOOT_PHASE_ACK_IN,   /* zero-length IN ends an OUT/no-data command */
        PICOBOOT_PHASE_ACK_OUT,  /* zero-length OUT ends READ */
        PICOBOOT_PHASE_HALTED,
        _PICOBOOT_PHASE_MAX,
} PicobootPhase;

typedef void (*PicobootModelEventFn)(void *userdata, const char *event, uint32_t address, uint32_t length);

typedef struct PicobootModel {
        const Timing *timing;
        FlashModel *flash;   /* not owned */
        uint8_t *sram;       /* RP2040_SRAM_SIZE */
        uint8_t rom_version; /* 1 = B0, 2 = B1, 3 = B2 */

        PicobootPhase phase;
        PicobootCmd cmd;
        uint32_t done; /* bytes of the data phase so far */
        uint8_t page[RP2040_FLASH_PAGE];
        PicobootCmdStatus status;
        uint64_t busy_until_us;
        uint8_t exclusive;
        bool xip_exited;
        bool reboot_requested;
        uint32_t reboot_delay_ms;

        /* quirk: the stall_on_write-th WRITE command (from power-up) fails
         * with UNKNOWN_ERROR before doing anything (0: never) */
        uint64_t stall_on_write;

        /* counters */
        uint64_t commands, writes, erases, reads, bytes_read, stalls, resets, status_requests;

        PicobootModelEventFn on_event;
        void *userdata;
} PicobootModel;

int picoboot_model_new(PicobootModel **ret, const Timing *timing, FlashModel *flash);
PicobootModel *picoboot_model_free(PicobootModel *m);
/* Power-up: back to waiting for a command, XIP on, not exclusive. */
void picoboot_model_power_up(PicobootModel *m);

/* A bulk OUT transfer: bytes consumed or -EPIPE (stall). */
int picoboot_model_out(PicobootModel *m, uint64_t now_us, const uint8_t *data, size_t len);
/* A bulk IN transfer of up to `len` bytes: bytes produced or -EPIPE. */
int picoboot_model_in(PicobootModel *m, uint64_t now_us, uint8_t *data, size_t len);
/* Vendor interface requests: RESET (0x41, OUT) and GET_COMMAND_STATUS
 * (0x42, IN, 16 bytes). Returns the data length or -EPIPE. */
int picoboot_model_control(PicobootModel *m, uint8_t type, uint8_t request, uint16_t length, uint8_t *data);
/* When the flash work started by the last transfer is done. */
uint64_t picoboot_model_busy_until(const PicobootModel *m);
/* A REBOOT was acknowledged: true once, with its delay. */
bool picoboot_model_take_reboot(PicobootModel *m, uint32_t *ret_delay_ms);
const char *picoboot_phase_to_string(PicobootPhase p);
