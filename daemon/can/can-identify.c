/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>

#include "can/can-identify.h"
#include "can/can-transport.h"
#include "util/macros.h"
#include "serial/klipper-identify.h"

/* How long one query listens for the node, and how often it is asked
 * (an answer frame may be lost on a busy bus). */
#define QUERY_WINDOW_USEC (250u * 1000u)
#define QUERY_TRIES       2
#define ADMIN_SEND_USEC   (500u * 1000u)
#define MAX_ANSWERS       32

int can_identify_node(const char *iface, const CanUuid *uuid, uint8_t node_id, uint64_t timeout_usec,
                      const atomic_bool *cancel, KlipperDictInfo *ret)
{
        _cleanup_(can_transport_freep) CanTransport *t = NULL;
        CanNodeAnswer a[MAX_ANSWERS];
        uint8_t d[CAN_DATA_MAX];
        CanApp seen = CAN_APP_UNKNOWN;
        int r;

        if (!iface || !uuid || !ret || node_id > CAN_IDENTIFY_NODEID_TOP)
                return -EINVAL;
        r = can_transport_open(&t, iface);
        if (r < 0)
                return r;
        for (int i = 0; i < QUERY_TRIES && seen != CAN_APP_KLIPPER; i++) {
                if (cancel && atomic_load(cancel))
                        return -ECANCELED;
                int n = can_transport_query(t, QUERY_WINDOW_USEC, a, ELEMENTSOF(a));
                if (n < 0)
                        return n;
                for (int k = 0; k < n; k++)
                        if (can_uuid_equal(&a[k].uuid, uuid))
                                seen = a[k].app;
        }
        if (seen == CAN_APP_KATAPULT)
                return -EPROTO;
        if (seen != CAN_APP_KLIPPER)
                return -EBUSY;
        /* right after its answer, so nobody else can have given it an id meanwhile
         * but for a klippy starting in the same instant */
        r = can_transport_admin(t, d, can_admin_encode_set_nodeid(d, CAN_APP_KLIPPER, uuid, node_id),
                                ADMIN_SEND_USEC);
        if (r < 0)
                return r;
        r = can_transport_select_node(t, node_id);
        if (r < 0)
                return r;
        return klipper_identify_run(can_transport_get_transport(t), timeout_usec, cancel, ret);
}
