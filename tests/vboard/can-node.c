/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * A virtual board on the CAN bus: Klipper's CAN face while its application
 * runs, Katapult's in the bootloader (Klipper src/generic/canserial.c,
 * Katapult src/generic/canbus.c, as described in notes/protocols-2.md):
 *
 * - Klipper: answers QUERY_UNASSIGNED (app byte 0x01) while it has no node
 *   id, takes SET_NODEID 0x01 for its UUID, and REBOOT 0x02 for its UUID
 *   (it leaves the bus and comes back as Katapult after a reset). With a
 *   node id it speaks Klipper's MCU protocol on 0x100 + 2N / + 1:
 *   `identify` is answered with the dictionary of the image in its own
 *   virtual flash (klipper-identify.c), read when the application starts.
 * - Katapult: answers the query with app byte 0x11 while unassigned, takes
 *   SET_NODEID 0x11 and CLEAR_NODE_ID 0x12; then the KatapultModel (block
 *   size 64, GET_CANBUS_ID) runs on 0x100 + 2N / 0x100 + 2N + 1 with its
 *   answers cut into 8-byte frames. After COMPLETE it starts the
 *   application (Klipper, unassigned) ~100 ms later, or stays in Katapult
 *   when the image is not plausible.
 *
 * Quirks: katapult-corrupt, katapult-nack, katapult-busy as on USB;
 * can-drop (every 37th frame the node sends is lost); unplug=N[,MS] (the
 * node stops answering after N blocks written: power lost).
 */

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "can-bus.h"
#include "katapult-model.h"
#include "klipper-identify.h"

#define CAN_NODE_BLOCK_SIZE   64
#define CAN_REBOOT_DELAY_US   (20u * 1000u)
#define CAN_COMPLETE_DELAY_US (100u * 1000u)
#define CAN_DROP_EVERY        37

struct CanNode {
        VBoard *board;
        int ifindex;
        CanUuid uuid;
        int node_id; /* -1: unassigned */
        KatapultModel *katapult;
        KlipperIdentify *klipper; /* the application's identify; NULL until first asked */
        bool klipper_read;        /* the flash was looked at since the application started */
        bool leaving;             /* a reboot or COMPLETE is under way: silent */
        uint64_t frames_sent;
        uint64_t frames_dropped;
        uint64_t queries_answered;
        uint64_t reboots;
};

static uint64_t scaled(VBoard *b, uint64_t us)
{
        return (uint64_t)((double)us * b->world->timing.scale);
}

int can_node_new(CanNode **ret, VBoard *b, int ifindex, const CanUuid *uuid)
{
        CanNode *n = calloc(1, sizeof(*n));
        if (!n)
                return -ENOMEM;
        n->board = b;
        n->ifindex = ifindex;
        n->uuid = *uuid;
        n->node_id = -1;
        *ret = n;
        return 0;
}

CanNode *can_node_free(CanNode *n)
{
        if (!n)
                return NULL;
        katapult_model_free(n->katapult);
        klipper_identify_free(n->klipper);
        free(n);
        return NULL;
}

static void klipper_forget(CanNode *n)
{
        n->klipper = klipper_identify_free(n->klipper);
        n->klipper_read = false;
}

void can_node_reset(CanNode *n)
{
        n->node_id = -1;
        n->leaving = false;
        n->katapult = katapult_model_free(n->katapult);
        klipper_forget(n);
}

int can_node_ifindex(const CanNode *n)
{
        return n->ifindex;
}

static void send_frame(CanNode *n, uint32_t id, const uint8_t *data, size_t len)
{
        struct can_frame f = { .can_id = id, .len = (uint8_t)len };
        VBoard *b = n->board;

        memcpy(f.data, data, len);
        n->frames_sent++;
        if (b->quirks[QUIRK_CAN_DROP] && n->frames_sent % CAN_DROP_EVERY == 0) {
                n->frames_dropped++;
                return;
        }
        can_bus_deliver(b->world, n->ifindex, &f);
}

static void flush_katapult(CanNode *n)
{
        uint8_t buf[CAN_DATA_MAX];
        size_t k;

        while ((k = katapult_model_take_output(n->katapult, buf, sizeof(buf), NULL)) > 0)
                send_frame(n, can_node_tx_id((uint8_t)n->node_id), buf, k);
}

static void klipper_write(void *userdata, VBoard *b, const uint8_t *data, size_t len)
{
        CanNode *n = userdata;

        /* canserial.c: the byte stream cut into frames of up to 8 bytes */
        for (size_t off = 0; off < len; off += CAN_DATA_MAX)
                send_frame(n, can_node_tx_id((uint8_t)n->node_id), data + off,
                           MIN(len - off, (size_t)CAN_DATA_MAX));
}

static void klipper_receive(CanNode *n, const uint8_t *data, size_t len)
{
        VBoard *b = n->board;

        if (!n->klipper_read) {
                /* the image the application was started from: whatever was flashed last */
                n->klipper_read = true;
                (void)klipper_identify_new(&n->klipper, b);
                klipper_identify_set_writer(n->klipper, klipper_write, n);
        }
        /* an image without a dictionary is no Klipper: silent */
        klipper_identify_on_data(n->klipper, b, data, len);
}

static void admin(CanNode *n, const uint8_t *data, size_t len)
{
        VBoard *b = n->board;
        bool katapult = b->mode == BOARD_MODE_KATAPULT;
        CanApp app = katapult ? CAN_APP_KATAPULT : CAN_APP_KLIPPER;
        CanAdminCmd c;
        uint8_t out[CAN_DATA_MAX];
        char u[13];

        if (can_admin_decode(data, len, &c) < 0)
                return;
        switch (c.cmd) {
        case CAN_ADMIN_QUERY_UNASSIGNED:
                if (n->node_id >= 0)
                        return;
                n->queries_answered++;
                send_frame(n, CAN_ADMIN_RESP_ID, out, can_admin_encode_query_answer(out, &n->uuid, app));
                return;
        case CAN_ADMIN_KLIPPER_SET_NODEID:
        case CAN_ADMIN_KATAPULT_SET_NODEID:
                if (c.app != app || !can_uuid_equal(&c.uuid, &n->uuid))
                        return;
                n->node_id = c.node_id;
                vboard_event(b, "can-nodeid", "%s node id %u", can_app_to_string(app), c.node_id);
                return;
        case CAN_ADMIN_CLEAR_NODEID:
                if (katapult)
                        n->node_id = -1;
                return;
        case CAN_ADMIN_KLIPPER_REBOOT:
                if (katapult || !can_uuid_equal(&c.uuid, &n->uuid))
                        return;
                n->reboots++;
                n->leaving = true;
                vboard_event(b, "can-reboot", "uuid %s: into Katapult", can_uuid_format(&n->uuid, u));
                vboard_schedule(b, scaled(b, CAN_REBOOT_DELAY_US),
                                b->bootloader == BOARD_BOOTLOADER_KATAPULT ? BOARD_MODE_KATAPULT
                                                                           : vboard_rom_mode(b),
                                timing_reenumerate_us(&b->world->timing), "CAN reboot request");
                return;
        }
}

void can_node_receive(CanNode *n, const struct can_frame *f)
{
        VBoard *b = n->board;
        canid_t id = f->can_id & CAN_SFF_MASK;
        size_t len = MIN((size_t)f->len, (size_t)CAN_DATA_MAX);

        if (b->mode == BOARD_MODE_OFF || n->leaving ||
            (f->can_id & (CAN_EFF_FLAG | CAN_RTR_FLAG | CAN_ERR_FLAG)))
                return;
        if (id == CAN_ADMIN_ID) {
                admin(n, f->data, len);
                return;
        }
        if (n->node_id < 0 || id != can_node_rx_id((uint8_t)n->node_id))
                return;
        if (b->mode == BOARD_MODE_APP) {
                klipper_receive(n, f->data, len);
                return;
        }
        if (b->mode != BOARD_MODE_KATAPULT)
                return;

        katapult_model_feed(n->katapult, f->data, len);
        flush_katapult(n);
        const KatapultModelStats *st = katapult_model_get_stats(n->katapult);
        if (b->quirks[QUIRK_UNPLUG] && st->blocks_written >= b->unplug_after_blocks) {
                n->leaving = true;
                b->unplugs++;
                vboard_event(b, "unplug", "after %" PRIu64 " blocks (CAN node silent)", st->blocks_written);
                vboard_schedule(b, 0, b->unplug_replug_ms < 0 ? BOARD_MODE_OFF : BOARD_MODE_KATAPULT,
                                (uint64_t)MAX(b->unplug_replug_ms, 0) * 1000u, "unplug quirk");
                b->quirks[QUIRK_UNPLUG] = false;
                return;
        }
        if (katapult_model_completed(n->katapult)) {
                n->leaving = true;
                vboard_schedule(b, scaled(b, CAN_COMPLETE_DELAY_US), (BoardMode)-1,
                                timing_reenumerate_us(&b->world->timing), "Katapult COMPLETE");
        }
}

int can_node_power_up(VBoard *b, BoardMode mode)
{
        World *w = b->world;
        CanNode *n = b->can;
        const BoardVariant *v = b->variant;
        int r = 0;

        g_mutex_lock(&w->lock);
        if (b->mode != BOARD_MODE_OFF && b->powered_once) {
                g_mutex_unlock(&w->lock);
                return 0;
        }
        n->node_id = -1;
        n->leaving = false;
        n->katapult = katapult_model_free(n->katapult);
        klipper_forget(n);
        if (mode == BOARD_MODE_KATAPULT) {
                KatapultModelConfig cfg = {
                        .start_address = v->flash_base + v->app_offset,
                        .block_size = CAN_NODE_BLOCK_SIZE,
                        .mcu = v->mcu,
                        .version = "v0.0.1-vboard-can",
                        .canbus_uuid = n->uuid.b,
                        .quirks = {
                                .corrupt_every = b->quirks[QUIRK_KATAPULT_CORRUPT] ? 7 : 0,
                                .nack_every = b->quirks[QUIRK_KATAPULT_NACK] ? 5 : 0,
                                .busy_every = b->quirks[QUIRK_KATAPULT_BUSY] ? 4 : 0,
                        },
                };
                r = katapult_model_new(&n->katapult, b->flash, &cfg);
        } else if (mode != BOARD_MODE_APP)
                r = -EOPNOTSUPP; /* a CAN node has no ROM face on the bus */
        if (r < 0) {
                vboard_event(b, "error", "cannot start %s on CAN: %s", board_mode_to_string(mode),
                             g_strerror(-r));
                g_mutex_unlock(&w->lock);
                return r;
        }
        if (b->powered_once)
                b->reenumerations++;
        b->powered_once = true;
        {
                g_autofree char *ev = g_strdup_printf("%s-added", board_mode_to_string(mode));
                vboard_event(b, ev, "on CAN ifindex %d", n->ifindex);
        }
        if (mode == BOARD_MODE_APP && b->last_mode != BOARD_MODE_APP && b->last_mode != BOARD_MODE_OFF)
                vboard_event(b, "app-back", "on CAN");
        b->mode = mode;
        if (world_on_mode_change)
                world_on_mode_change(w);
        g_mutex_unlock(&w->lock);
        return 0;
}

void can_node_power_down(VBoard *b, const char *why)
{
        World *w = b->world;
        CanNode *n = b->can;

        g_mutex_lock(&w->lock);
        if (b->mode == BOARD_MODE_OFF) {
                g_mutex_unlock(&w->lock);
                return;
        }
        n->katapult = katapult_model_free(n->katapult);
        klipper_forget(n);
        n->node_id = -1;
        {
                g_autofree char *ev = g_strdup_printf("%s-removed", board_mode_to_string(b->mode));
                vboard_event(b, ev, "%s", why);
        }
        b->last_mode = b->mode;
        b->mode = BOARD_MODE_OFF;
        if (world_on_mode_change)
                world_on_mode_change(w);
        g_mutex_unlock(&w->lock);
}

void can_node_describe(CanNode *n, json_t *o)
{
        char u[13];
        json_object_set_new(o, "can_uuid", json_string(can_uuid_format(&n->uuid, u)));
        json_object_set_new(o, "can_ifindex", json_integer(n->ifindex));
        json_object_set_new(o, "can_node_id", json_integer(n->node_id));
        json_object_set_new(o, "can_frames_sent", json_integer((json_int_t)n->frames_sent));
        json_object_set_new(o, "can_frames_dropped", json_integer((json_int_t)n->frames_dropped));
        json_object_set_new(o, "can_reboots", json_integer((json_int_t)n->reboots));
}

int can_bus_add_node(World *w, VBoard *b, const char *iface, const CanUuid *uuid)
{
        CanUuid u;
        int ifindex = can_bus_iface(w, iface);
        int r;

        if (ifindex < 0)
                return ifindex;
        if (uuid)
                u = *uuid;
        else {
                /* Klipper's CAN UUID is the same hash of the chip id as a bridge's */
                r = can_uuid_from_usb_serial(b->uid, &u);
                if (r < 0)
                        return r;
        }
        return can_node_new(&b->can, b, ifindex, &u);
}
