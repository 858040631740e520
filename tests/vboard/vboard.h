/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The emulated world: up to 32 boards behind one hub (root hub usb1, hub
 * 1-1, board i at 1-1.(i+1)), created in a umockdev testbed, each with a
 * NOR flash, the STM32 ROM DFU bootloader (dfu-model) and a tty-based
 * application mode (tty-port + klipper-tty).
 *
 * Threads: umockdev runs the ioctl handlers (usbdevfs, tty modem lines) on
 * its worker thread; everything else (control socket, timers, the pty
 * masters, adding/removing devices) runs on the main thread's GMainLoop.
 * World.lock protects all board state; testbed calls are made without it.
 */

/* sys/param.h (via glib-unix.h) defines these too; macros.h has the
 * project's, glib.h redefines them identically afterwards */
#undef MIN
#undef MAX
#include "util/macros.h"

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>
#include <umockdev.h>

#include "boards/board-db.h"
#include "dfu-model.h"
#include "flash-model.h"
#include "picoboot-model.h"
#include "timing.h"

#define VBOARD_MAX_BOARDS 32

typedef struct World World;
typedef struct VBoard VBoard;
typedef struct UsbDevice UsbDevice;
typedef struct TtyPort TtyPort;
typedef struct TtyModel TtyModel;
typedef struct CanNode CanNode;

typedef enum BoardMode {
        BOARD_MODE_OFF,
        BOARD_MODE_APP,
        BOARD_MODE_DFU,
        BOARD_MODE_KATAPULT,
        BOARD_MODE_BOOTSEL, /* RP2040 boot ROM: mass storage + PICOBOOT */
        _BOARD_MODE_MAX,
        _BOARD_MODE_INVALID = -22,
} BoardMode;

typedef enum Quirk {
        QUIRK_SHORT_STRING,
        QUIRK_GARBAGE_TAIL,
        QUIRK_ERROR_AT_START,
        QUIRK_RESET_ON_LEAVE,
        QUIRK_NO_1200_REBOOT,
        QUIRK_UNPLUG,
        QUIRK_KATAPULT_CORRUPT, /* katapult-tty.c */
        QUIRK_KATAPULT_NACK,
        QUIRK_KATAPULT_BUSY,
        QUIRK_KATAPULT_SLOW,
        QUIRK_DFU_TOLERANT,
        /* plain DFU: bitManifestationTolerant set */ QUIRK_DFU_NO_DETACH, /* plain DFU: bitWillDetach clear
                                                                            */
        QUIRK_DFU_SILENT_MANIFEST, /* plain DFU: no GETSTATUS answer after dfuMANIFEST */
        QUIRK_STRING_EIO,          /* DFU: the first N string descriptor reads fail with EIO */
        QUIRK_PICOBOOT_STALL,      /* RP2040: the N-th WRITE command fails and halts */
        QUIRK_CAN_DROP,            /* CAN node: every 37th frame it sends is lost */
        QUIRK_AVR_MISS_RESET,      /* AVR: the first DTR pulse after power-up misses the chip */
        _QUIRK_MAX,
        _QUIRK_INVALID = -22,
} Quirk;

const char *board_mode_to_string(BoardMode m);
BoardMode board_mode_from_string(const char *s);
const char *quirk_to_string(Quirk q);
Quirk quirk_from_string(const char *s);

/* What a board shows on the bus in one of its modes. */
typedef struct UsbIdentity {
        uint16_t vid, pid, bcd_device;
        const char *manufacturer, *product, *serial;
} UsbIdentity;

struct VBoard {
        World *world;
        unsigned index;
        char *name; /* "octopus-pro-f429" */
        char *port; /* "1-1.3" */
        unsigned port_number;
        char uid[25]; /* 24 hex digits */
        char dfu_serial[13];
        char bootsel_serial[13];

        /* from the daemon's board database */
        const Board *db_board;
        const BoardVariant *variant;
        BoardBootloader bootloader;
        /* the DFU mode is a plain DFU 1.1 bootloader (database "bootloader":
         * "dfu"), not the ST ROM's DfuSe */
        bool plain_dfu;
        /* an RP2040: BOOTSEL ROM instead of DFU, boot2 checked at boot */
        bool rp2040;
        PicobootModel *picoboot;
        /* an AVR (bootloader stk500v2/stk500v1): simavr runs its bootloader (avr-tty.c) */
        struct AvrBoard *avr;
        /* emulation-only values */
        char *option_bytes_layout;
        uint16_t transfer_size;

        bool quirks[_QUIRK_MAX];
        unsigned unplug_after_blocks;
        int unplug_replug_ms;      /* -1: stays unplugged */
        unsigned string_eio_reads; /* string-eio=N */
        unsigned string_eio_left;  /* of them, still to fail in this DFU appearance */

        CanNode *can; /* on a virtual CAN bus instead of USB (can-node.c) */
        /* a USB-to-CAN bridge board (can-bridge.c): its Klipper face on the
         * interface it provides, and the interface */
        CanNode *bridge;
        int bridge_ifindex;

        FlashModel *flash;
        FlashModel *option_bytes;
        DfuModel *dfu;

        BoardMode mode;
        BoardMode initial_mode;
        BoardMode last_mode; /* before the last power-down */
        bool powered_once;
        UsbDevice *usb; /* NULL while off */
        TtyPort *tty;   /* created at the first tty-mode power-up, kept */
        const TtyModel *tty_model;
        void *tty_state;
        guint pending_source; /* scheduled power change */
        uint64_t blocks_at_power_up;

        /* observation */
        uint64_t reenumerations;
        uint64_t unplugs;
        uint64_t baud_1200_requests;
        json_t *events;
};

struct World {
        GMutex lock;
        UMockdevTestbed *testbed;
        char *testbed_root;
        char *ioctl_dir;
        Timing timing;
        int64_t start_us;
        BoardDb *db;
        VBoard *boards[VBOARD_MAX_BOARDS];
        size_t n_boards;
        bool devnum_used[128];
        UsbDevice *usb_by_devnum[128]; /* owns every UsbDevice, gone ones too */
        GSList *retired_usb;           /* UsbDevice whose devnum was handed out again */
        unsigned next_devnum;
        bool verbose;
};

/* board.c */
int vboard_new(VBoard **ret, World *w, unsigned index, const char *name);
VBoard *vboard_free(VBoard *b);
void vboard_set_uid(VBoard *b, const char *uid);
int vboard_set_quirk(VBoard *b, const char *spec, bool on);
int vboard_init_flash(VBoard *b, BoardMode mode);
int vboard_load_file(VBoard *b, const char *spec);
bool vboard_app_plausible(VBoard *b);
/* The mode the board's ROM bootloader shows (DFU, or BOOTSEL on RP2040). */
BoardMode vboard_rom_mode(VBoard *b);
uint64_t world_now_us(World *w);
/* Record an event (lock held). */
void vboard_event(VBoard *b, const char *event, const char *detail_format, ...) _printf_(3, 4);
json_t *vboard_describe(VBoard *b);
json_t *vboard_stats(VBoard *b);
VBoard *world_find_board(World *w, const char *spec);

/* Power: main thread only, lock NOT held. */
int vboard_power_up(VBoard *b, BoardMode mode);
void vboard_power_down(VBoard *b, const char *why);
/* From any thread, lock held: take the board off the bus after `delay_us`
 * and bring it back in `mode` after a further re-enumeration delay
 * (BOARD_MODE_OFF: stays off; -1 for `mode`: as the firmware would boot). */
void vboard_schedule(VBoard *b, uint64_t delay_us, BoardMode mode, uint64_t off_us, const char *why);
BoardMode vboard_boot_mode(VBoard *b);
/* Called with the lock held whenever a board's mode changed (control.c). */
extern void (*world_on_mode_change)(World *w);
