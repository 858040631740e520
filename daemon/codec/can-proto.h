/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Klipper's and Katapult's use of a CAN bus (Klipper docs/CANBUS.md and
 * src/generic/canserial.c, Katapult scripts/flashtool.py), as a pure codec:
 *
 * - Admin frames: the host sends on 0x3f0, nodes answer on 0x3f1.
 *   QUERY_UNASSIGNED 0x00: every node without a node id answers
 *   0x20 (NEED_NODEID), its 6-byte UUID, and the set-node-id command its
 *   application expects (Klipper 0x01, Katapult 0x11).
 *   SET_NODEID (0x01 or 0x11) + UUID + node id; CLEAR_NODE_ID 0x12;
 *   Klipper's REBOOT 0x02 + UUID (into the bootloader).
 * - Node id N (from 128) receives on 0x100 + 2N, answers on 0x100 + 2N + 1;
 *   the byte stream on that pair is cut into frames of up to 8 bytes.
 * - A USB-to-CAN bridge's UUID from its USB serial (the chip id in hex):
 *   fasthash64(chip id, seed 0xA16231A7), the hash's low byte first.
 *
 * No I/O, no logging.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CAN_ADMIN_ID      0x3f0u
#define CAN_ADMIN_RESP_ID 0x3f1u
#define CAN_NODEID_FIRST  128u
#define CAN_UUID_SIZE     6u
#define CAN_DATA_MAX      8u
#define CAN_UUID_SEED     0xA16231A7u

enum {
        CAN_ADMIN_QUERY_UNASSIGNED = 0x00,
        CAN_ADMIN_KLIPPER_SET_NODEID = 0x01,
        CAN_ADMIN_KLIPPER_REBOOT = 0x02,
        CAN_ADMIN_KATAPULT_SET_NODEID = 0x11,
        CAN_ADMIN_CLEAR_NODEID = 0x12,
        CAN_ADMIN_RESP_NEED_NODEID = 0x20,
};

/* Which application answered a query (by the set-node-id byte it expects). */
typedef enum CanApp {
        CAN_APP_UNKNOWN,
        CAN_APP_KLIPPER,
        CAN_APP_KATAPULT,
        _CAN_APP_MAX,
        _CAN_APP_INVALID = -22,
} CanApp;

const char *can_app_to_string(CanApp a); /* "unknown", "klipper", "katapult" */

typedef struct CanUuid {
        uint8_t b[CAN_UUID_SIZE];
} CanUuid;

/* 12 hex digits (either case, an optional "0x" prefix): 0 or -EINVAL. */
int can_uuid_parse(const char *s, CanUuid *ret);
/* 12 lowercase hex digits into buf[13]; returns buf. */
char *can_uuid_format(const CanUuid *u, char buf[static 13]);
bool can_uuid_equal(const CanUuid *a, const CanUuid *b);

/* fasthash64 (Zilong Tan's), as Klipper's firmware uses it for the UUID. */
uint64_t can_fasthash64(const void *data, size_t size, uint64_t seed);
/* A bridge's UUID from its USB serial number (hex chip id); -EINVAL if not hex. */
int can_uuid_from_usb_serial(const char *serial, CanUuid *ret);

/* The ids of a node id's pair. */
static inline uint32_t can_node_rx_id(uint8_t node_id) /* host -> node */
{
        return 0x100u + 2u * node_id;
}
static inline uint32_t can_node_tx_id(uint8_t node_id) /* node -> host */
{
        return 0x100u + 2u * node_id + 1u;
}

/* Admin frames into data[8]; each returns the frame length. */
size_t can_admin_encode_query(uint8_t data[static CAN_DATA_MAX]);
size_t can_admin_encode_reboot(uint8_t data[static CAN_DATA_MAX], const CanUuid *u);
size_t can_admin_encode_set_nodeid(uint8_t data[static CAN_DATA_MAX], CanApp app, const CanUuid *u,
                                   uint8_t node_id);
size_t can_admin_encode_clear(uint8_t data[static CAN_DATA_MAX]);
size_t can_admin_encode_query_answer(uint8_t data[static CAN_DATA_MAX], const CanUuid *u, CanApp app);

/* A host -> nodes admin frame, as a node model sees it. */
typedef struct CanAdminCmd {
        uint8_t cmd;
        CanApp app;      /* SET_NODEID: which application's command */
        CanUuid uuid;    /* REBOOT, SET_NODEID */
        uint8_t node_id; /* SET_NODEID */
} CanAdminCmd;

/* 0, or -EBADMSG (empty, short for its command, unknown command). */
int can_admin_decode(const uint8_t *data, size_t size, CanAdminCmd *ret);
/* A query answer (NEED_NODEID): 0 or -EBADMSG. An answer without the app
 * byte (7 bytes, older firmware) is CAN_APP_UNKNOWN. */
int can_admin_decode_answer(const uint8_t *data, size_t size, CanUuid *ret_uuid, CanApp *ret_app);

/*
 * Cut a byte stream into CAN frames of up to 8 bytes: the length of frame
 * `index` of a `size`-byte message, 0 past the end (an empty message is
 * no frames). can_frames_count() is the number of frames.
 */
size_t can_frames_count(size_t size);
size_t can_frame_length(size_t size, size_t index);

/*
 * The CAN MCUs of a Klipper printer.cfg: `[mcu]` / `[mcu NAME]` sections
 * with `canbus_uuid` (and `canbus_interface`, default can0), as klippy
 * reads them (`key: value` or `key = value`, `#`/`;` comments).
 */
typedef struct KlipperCanMcu {
        char name[64];  /* "mcu" or NAME */
        char iface[16]; /* canbus_interface */
        CanUuid uuid;
} KlipperCanMcu;

/* Returns how many were written to ret[] (at most max); lines that do not
 * parse are skipped. */
size_t klipper_cfg_can_mcus(const char *text, size_t len, KlipperCanMcu *ret, size_t max);
