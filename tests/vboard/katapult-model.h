/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The Katapult bootloader as a pure byte-in/byte-out state machine over a
 * NOR flash model (no I/O, no clock): feed it what the host wrote, take what
 * the device answers. It answers as Katapult's firmware does (src/flashcmd.c,
 * src/command.c, src/stm32/flash.c):
 *
 * - CONNECT: ACK with protocol 1.1.0, application start, block size, MCU,
 *   software version.
 * - SEND_BLOCK: block-aligned address >= start with exactly one block of
 *   data; a block at the start of a flash sector erases that sector first
 *   (unless it is erased already, or the block is a retransmission); a block
 *   elsewhere must land on erased flash or repeat what is there; anything
 *   else is ERROR. EOF answers the number of sectors started.
 * - REQUEST_BLOCK: ACK with the address and the block read from flash.
 * - COMPLETE: ACK; the driver then starts the application.
 * - A frame with a bad CRC or trailer gets one NACK per loss of sync; an
 *   unknown command gets ERROR.
 *
 * Quirks make it misbehave the way real links do: corrupt a reply, answer
 * NACK or BUSY instead of executing, be slow (the driver sleeps the time
 * katapult_model_take_output() reports).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec/katapult-proto.h"
#include "flash-model.h"

typedef struct KatapultModelQuirks {
        unsigned corrupt_every;  /* corrupt every Nth reply frame (a payload/CRC byte flipped); 0 = never */
        unsigned nack_every;     /* answer every Nth command with NACK instead of executing it */
        unsigned busy_every;     /* answer every Nth command with BUSY instead of executing it */
        uint64_t reply_delay_us; /* slow device: time before each reply appears */
} KatapultModelQuirks;

typedef struct KatapultModelConfig {
        uint32_t start_address; /* the application start (board's flash base + app offset) */
        uint32_t block_size;    /* 64, 128, 256 or 512 */
        const char *mcu;        /* "stm32f446xx" */
        const char *version;    /* software version string, e.g. "v0.0.1-flashd" */
        uint32_t proto_version; /* 0 = 1.1.0 */
        /* A CAN build: GET_CANBUS_ID answers these 6 bytes; NULL: a USB
         * build, where the command is unknown. */
        const uint8_t *canbus_uuid;
        KatapultModelQuirks quirks;
} KatapultModelConfig;

typedef struct KatapultModelStats {
        uint64_t commands; /* valid frames received */
        uint64_t connects;
        uint64_t blocks_written;  /* SEND_BLOCKs that changed flash */
        uint64_t blocks_repeated; /* retransmissions ignored */
        uint64_t blocks_read;
        uint64_t sectors_erased;
        uint64_t nacks, busies, errors, corrupted;
        uint64_t eofs;
} KatapultModelStats;

typedef struct KatapultModel KatapultModel;

/* `flash` stays owned by the caller (it outlives the bootloader: the
 * application runs from it afterwards). */
int katapult_model_new(KatapultModel **ret, FlashModel *flash, const KatapultModelConfig *cfg);
KatapultModel *katapult_model_free(KatapultModel *m);

void katapult_model_set_quirks(KatapultModel *m, const KatapultModelQuirks *q);

/* Bytes the host wrote. Replies are queued for katapult_model_take_output(). */
void katapult_model_feed(KatapultModel *m, const void *data, size_t size);

/*
 * Move up to `size` queued reply bytes into buf; returns the count. When
 * ret_delay_us is given it receives the time the device needs before these
 * bytes appear (the slow quirk); the driver sleeps that long before writing.
 */
size_t katapult_model_take_output(KatapultModel *m, void *buf, size_t size, uint64_t *ret_delay_us);
size_t katapult_model_output_pending(const KatapultModel *m);

/* COMPLETE was acknowledged: the driver should start the application. */
bool katapult_model_completed(const KatapultModel *m);
/* Whether what is at the start address looks like an application (initial
 * stack pointer in RAM 0x2000_0000..0x3fff_ffff, a Thumb reset vector
 * inside flash above the start address): what decides whether the board
 * comes back as Klipper or stays in Katapult after COMPLETE. */
bool katapult_model_app_plausible(const KatapultModel *m);

const KatapultModelStats *katapult_model_get_stats(const KatapultModel *m);
