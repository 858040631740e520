/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The RP2040 boot ROM's PICOBOOT interface (RP2040 datasheet 2.8.5, "USB
 * PICOBOOT Interface"): a vendor interface with one bulk OUT and one bulk
 * IN endpoint. Each command is a 32-byte little-endian packet on bulk OUT
 * (magic, token, id, argument size, transfer length, 16 bytes of
 * arguments), then the data phase in the direction of bit 7 of the id,
 * then a zero-length status transfer in the opposite direction. A failed
 * command halts the endpoints; the interface control requests RESET and
 * GET_COMMAND_STATUS recover and explain. Pure code: no I/O, no logging.
 */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PICOBOOT_MAGIC       0x431FD10BU
#define PICOBOOT_CMD_SIZE    32U
#define PICOBOOT_ARGS_MAX    16U
#define PICOBOOT_STATUS_SIZE 16U

/* The boot ROM's USB id in BOOTSEL mode; RP2350's ROM is 2e8a:000f and
 * speaks a different command set. */
#define RP2040_BOOTSEL_VID 0x2E8AU
#define RP2040_BOOTSEL_PID 0x0003U
#define RP2350_BOOTSEL_PID 0x000FU

/* RP2040 memory map (datasheet 2.2) */
#define RP2040_FLASH_BASE   0x10000000U
#define RP2040_FLASH_MAX    (16U * 1024U * 1024U) /* the XIP window */
#define RP2040_SRAM_BASE    0x20000000U
#define RP2040_SRAM_SIZE    (264U * 1024U)
#define RP2040_FLASH_SECTOR 4096U
#define RP2040_FLASH_PAGE   256U
#define RP2040_BOOT2_SIZE   256U
/* The boot ROM's version byte (datasheet 2.8.2.1.1: 1 = B0, 2 = B1, 3 = B2). */
#define RP2040_ROM_VERSION_ADDR 0x00000013U

typedef enum PicobootCmdId {
        PICOBOOT_EXCLUSIVE_ACCESS = 0x01,
        PICOBOOT_REBOOT = 0x02,
        PICOBOOT_FLASH_ERASE = 0x03,
        PICOBOOT_READ = 0x84,
        PICOBOOT_WRITE = 0x05,
        PICOBOOT_EXIT_XIP = 0x06,
        PICOBOOT_ENTER_CMD_XIP = 0x07,
        PICOBOOT_EXEC = 0x08,
        PICOBOOT_VECTORIZE_FLASH = 0x09,
} PicobootCmdId;

#define PICOBOOT_CMD_IN 0x80U

/* Interface control requests (bmRequestType 0x41 / 0xC1, wIndex = interface). */
#define PICOBOOT_IF_RESET      0x41U
#define PICOBOOT_IF_CMD_STATUS 0x42U

/* EXCLUSIVE_ACCESS argument */
#define PICOBOOT_NOT_EXCLUSIVE       0U
#define PICOBOOT_EXCLUSIVE           1U
#define PICOBOOT_EXCLUSIVE_AND_EJECT 2U

typedef enum PicobootStatus {
        PICOBOOT_OK = 0,
        PICOBOOT_UNKNOWN_CMD = 1,
        PICOBOOT_INVALID_CMD_LENGTH = 2,
        PICOBOOT_INVALID_TRANSFER_LENGTH = 3,
        PICOBOOT_INVALID_ADDRESS = 4,
        PICOBOOT_BAD_ALIGNMENT = 5,
        PICOBOOT_INTERLEAVED_WRITE = 6,
        PICOBOOT_REBOOTING = 7,
        PICOBOOT_UNKNOWN_ERROR = 8,
        _PICOBOOT_STATUS_MAX,
        _PICOBOOT_STATUS_INVALID = -EINVAL,
} PicobootStatus;

/* "ok", "unknown-cmd", ..., NULL when out of range */
const char *picoboot_status_to_string(PicobootStatus s);

typedef struct PicobootCmd {
        uint32_t token;
        uint8_t id;
        uint8_t arg_size;
        uint32_t transfer_length;
        /* decoded arguments by command */
        uint32_t addr;     /* range commands, EXEC, VECTORIZE_FLASH; REBOOT: pc */
        uint32_t size;     /* range commands; REBOOT: sp */
        uint32_t delay_ms; /* REBOOT */
        uint8_t exclusive; /* EXCLUSIVE_ACCESS */
} PicobootCmd;

/* Encoders: fill out[PICOBOOT_CMD_SIZE]. */
void picoboot_encode_exclusive(uint8_t out[static PICOBOOT_CMD_SIZE], uint32_t token, uint8_t exclusive);
/* FLASH_ERASE, READ, WRITE: transfer length = size for READ/WRITE, 0 for erase. */
void picoboot_encode_range(uint8_t out[static PICOBOOT_CMD_SIZE], uint32_t token, PicobootCmdId id,
                           uint32_t addr, uint32_t size);
/* pc 0 (with sp 0): boot normally (from flash) after delay_ms. */
void picoboot_encode_reboot(uint8_t out[static PICOBOOT_CMD_SIZE], uint32_t token, uint32_t pc, uint32_t sp,
                            uint32_t delay_ms);
/* EXIT_XIP, ENTER_CMD_XIP */
void picoboot_encode_simple(uint8_t out[static PICOBOOT_CMD_SIZE], uint32_t token, PicobootCmdId id);

/*
 * Decode a command packet as the ROM checks it. Returns -EBADMSG when the
 * packet is not a command at all (length or magic: the ROM stalls without
 * a status), else the PicobootStatus the ROM would give before running it:
 * PICOBOOT_OK, UNKNOWN_CMD, INVALID_CMD_LENGTH (argument size for the id),
 * INVALID_TRANSFER_LENGTH (READ/WRITE: must equal the range's size; others:
 * 0). *ret is filled whenever the magic was right.
 */
int picoboot_cmd_decode(const uint8_t *buf, size_t len, PicobootCmd *ret);

typedef struct PicobootCmdStatus {
        uint32_t token;
        uint32_t status; /* PicobootStatus, or an unknown number */
        uint8_t cmd_id;
        bool in_progress;
} PicobootCmdStatus;

void picoboot_status_encode(uint8_t out[static PICOBOOT_STATUS_SIZE], const PicobootCmdStatus *s);
/* -EBADMSG when shorter than 16 bytes. */
int picoboot_status_decode(const uint8_t *buf, size_t len, PicobootCmdStatus *ret);
