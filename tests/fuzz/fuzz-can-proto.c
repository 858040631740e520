/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * CAN admin frames as the virtual nodes and the host see them: a decoded
 * command re-encodes to the same bytes, a decoded query answer likewise,
 * UUID text round-trips, and the USB serial mapping takes any text.
 */
#include <assert.h>
#include <string.h>

#include "codec/can-proto.h"
#include "util/macros.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        uint8_t out[CAN_DATA_MAX];
        CanAdminCmd c;
        CanUuid u;
        CanApp app;
        char text[80], buf[13];

        if (can_admin_decode(data, size, &c) == 0) {
                size_t n = 0;
                switch (c.cmd) {
                case CAN_ADMIN_QUERY_UNASSIGNED:
                        n = can_admin_encode_query(out);
                        break;
                case CAN_ADMIN_CLEAR_NODEID:
                        n = can_admin_encode_clear(out);
                        break;
                case CAN_ADMIN_KLIPPER_REBOOT:
                        n = can_admin_encode_reboot(out, &c.uuid);
                        break;
                default:
                        n = can_admin_encode_set_nodeid(out, c.app, &c.uuid, c.node_id);
                        break;
                }
                assert(n <= size && memcmp(out, data, n) == 0);
        }
        if (can_admin_decode_answer(data, size, &u, &app) == 0 && size == 8 && app != CAN_APP_UNKNOWN) {
                can_admin_encode_query_answer(out, &u, app);
                assert(memcmp(out, data, 8) == 0);
        }

        memset(text, 0, sizeof(text));
        memcpy(text, data, MIN(size, sizeof(text) - 1));
        if (can_uuid_parse(text, &u) == 0) {
                CanUuid v;
                assert(can_uuid_parse(can_uuid_format(&u, buf), &v) == 0 && can_uuid_equal(&u, &v));
        }
        (void)can_uuid_from_usb_serial(text, &u);

        assert(can_frames_count(size) * CAN_DATA_MAX >= size);

        KlipperCanMcu mcus[4];
        size_t n = klipper_cfg_can_mcus((const char *)data, size, mcus, 4);
        assert(n <= 4);
        for (size_t i = 0; i < n; i++)
                assert(mcus[i].name[0] && mcus[i].iface[0]);
        return 0;
}
