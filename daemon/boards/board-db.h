/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The board database: JSON files (one board per file) installed in
 * FLASHD_BOARDS_DATADIR and overridable, file by file name, from
 * FLASHD_BOARDS_CONFDIR (/etc/flashd/boards.d). Boards are data, not code.
 *
 * File format (see daemon/boards/data/README.md):
 * {
 *   "name": "octopus-pro",
 *   "title": "BigTreeTech Octopus Pro v1.0 / v1.1",
 *   "bootloader": "rom-dfu" | "katapult" | "dfu" | "bootsel" | "stk500v2" | "stk500v1",
 *   "reboot": "usb-1200" | "uart-request" | "manual" | "dtr",
 *   "hints": ["..."],
 *   "variants": [ {
 *       "id": "f429",                          // vboard name: <name>-<id>
 *       "mcu": "stm32f429xx",
 *       "flash_base": "0x08000000", "flash_size": 1048576,
 *       "app_offset": 32768,
 *       "ram_start": "0x20000000", "ram_size": 196608,
 *       "layout": "@Internal Flash  /0x08000000/04*016Kg,01*064Kg,07*128Kg",
 *       "usb": { "app": "1d50:614e", "dfu": "0483:df11", "katapult": "1d50:6177" },  // or "bootsel"
 *       "reboot": "usb-1200",                  // optional override
 *       "avr": { "signature": "1e9801", "page_size": 256, "boot_size": 8192, "baud": 115200 },
 *       "hints": ["the F429 may ignore the 1200-baud reboot: set BOOT0 and press reset"]
 *   } ]
 * }
 * Addresses and sizes may be JSON numbers or "0x..." strings.
 */

#include <stdbool.h>
#include <stddef.h>
#include <errno.h>
#include <stdint.h>

#include "codec/dfuse-layout.h"

typedef enum BoardBootloader {
        BOARD_BOOTLOADER_ROM_DFU,
        BOARD_BOOTLOADER_KATAPULT,
        BOARD_BOOTLOADER_DFU,      /* a plain DFU 1.1 bootloader (no DfuSe), e.g. Smoothieware's */
        BOARD_BOOTLOADER_BOOTSEL,  /* none: the RP2040 boot ROM's BOOTSEL mode (PICOBOOT) */
        BOARD_BOOTLOADER_STK500V2, /* an AVR with the Arduino Mega's STK500v2 bootloader (stk500boot) */
        BOARD_BOOTLOADER_STK500V1, /* an AVR with optiboot (STK500v1) */
        _BOARD_BOOTLOADER_MAX,
        _BOARD_BOOTLOADER_INVALID = -EINVAL,
} BoardBootloader;

typedef enum BoardReboot {
        BOARD_REBOOT_USB_1200,
        BOARD_REBOOT_UART_REQUEST,
        BOARD_REBOOT_MANUAL,
        BOARD_REBOOT_DTR, /* the Arduino auto-reset: DTR/RTS pulse on the USB-serial tty */
        _BOARD_REBOOT_MAX,
        _BOARD_REBOOT_INVALID = -EINVAL,
} BoardReboot;

typedef struct BoardUsbId {
        uint16_t vid;
        uint16_t pid;
} BoardUsbId;

/* An AVR's serial bootloader facts (variant key "avr"). */
typedef struct BoardAvr {
        bool present;
        uint8_t signature[3]; /* "1e9801" */
        uint32_t page_size;   /* SPM page */
        uint32_t boot_size;   /* the boot section at the top of flash (fuses) */
        uint32_t baud;        /* the bootloader's rate */
} BoardAvr;

typedef struct BoardVariant {
        char *id;  /* "f429" */
        char *mcu; /* "stm32f429xx" */
        uint32_t flash_base;
        uint32_t flash_size;
        uint32_t app_offset; /* bytes above flash_base */
        uint32_t ram_start;
        uint32_t ram_size;
        char *layout;                              /* fallback DfuSe layout string */
        DfuseLayout *flash_layout;                 /* the same, parsed (checked at load) */
        BoardUsbId usb_app, usb_dfu, usb_katapult; /* vid 0 = none */
        BoardUsbId usb_bootsel;                    /* RP2040 boot ROM, 2e8a:0003 */
        BoardReboot reboot;
        BoardAvr avr; /* AVR boards (bootloader stk500v2/stk500v1) */
        char **hints; /* NULL-terminated; board hints first, then the variant's */
} BoardVariant;

typedef struct Board {
        char *name;
        char *title;
        BoardBootloader bootloader;
        BoardVariant *variants;
        size_t n_variants;
        char *source_path; /* the file it came from */
} Board;

typedef struct BoardDb {
        Board *boards;
        size_t n_boards;
} BoardDb;

/* Load every *.json of the given directories, later directories overriding
 * files of the same name from earlier ones. Missing directories are fine.
 * A malformed file fails the load with -EBADMSG and names itself in
 * *ret_error (malloc'd), so `flashd` refuses to start with a clear message. */
int board_db_load(BoardDb **ret, const char *const *dirs, char **ret_error);

/* The directories searched when none are configured (NULL-terminated,
 * static): the installed data and the administrator's additions, or, for a
 * flashd run from its build tree, the source tree's data instead of the
 * installed data. */
const char *const *board_db_default_dirs(void);

/* "DIR1, DIR2": for messages; malloc'd, NULL on OOM. */
char *board_db_dirs_to_string(const char *const *dirs);
/* Parse one file's content (for tests and fuzzing). */
int board_db_parse_board(const char *json, size_t len, Board *ret, char **ret_error);
BoardDb *board_db_free(BoardDb *db);
void board_clear(Board *b);

const Board *board_db_find(const BoardDb *db, const char *name);
/* The variant with the given id ("f429") of one board, or NULL. */
const BoardVariant *board_find_variant(const Board *b, const char *id);
/* A vboard-style "<board>-<variant>" name ("octopus-pro-f429"): 0 or -ENOENT. */
int board_db_find_variant(const BoardDb *db, const char *name, const Board **ret_board,
                          const BoardVariant **ret_variant);
/* Variants whose MCU equals `mcu`; returns how many were written to ret[]. */
size_t board_db_match_mcu(const BoardDb *db, const char *mcu, const BoardVariant **ret_variants,
                          const Board **ret_boards, size_t max);
/* Variants with the given USB id in any mode. */
size_t board_db_match_usb(const BoardDb *db, uint16_t vid, uint16_t pid, const BoardVariant **ret_variants,
                          const Board **ret_boards, size_t max);

const char *board_bootloader_to_string(BoardBootloader b);
BoardBootloader board_bootloader_from_string(const char *s);
const char *board_reboot_to_string(BoardReboot r);
BoardReboot board_reboot_from_string(const char *s);
