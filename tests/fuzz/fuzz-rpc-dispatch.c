/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Bytes as a client would send them: through the ETX frame reader (with a
 * small frame limit so oversize handling is reached), JSON parsing and the
 * real dispatch table, on a Manager without devices or sockets.
 */
#include <stdint.h>
#include <stdlib.h>

#include "config.h"
#include "util/log.h"
#include "manager.h"
#include "rpc-frame.h"
#include "server/rpc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static Manager *manager;

static void on_response(uint64_t client_id, json_t *response, void *userdata)
{
        /* Every response must serialize (what the server would send). */
        char *s = json_dumps(response, JSON_COMPACT);
        if (!s)
                abort();
        free(s);
        (*(size_t *)userdata)++;
}

static void manager_free_at_exit(void)
{
        manager = manager_free(manager);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (!manager) {
                Config *c = NULL;
                const char *dir = getenv("FLASHD_BOARDS_DIR") ?: FLASHD_SOURCE_BOARDS_DIR;
                log_set_max_level(LOG_CRIT);
                if (config_new(&c) < 0 || config_add_boards_dir(c, dir) < 0 ||
                    manager_new(&manager, NULL, c) < 0)
                        abort();
                atexit(manager_free_at_exit);
        }

        RpcFrameReader *reader = NULL;
        if (rpc_frame_reader_new(&reader, 4096) < 0)
                abort();
        /* Feed in two pieces so frames split across reads are exercised. */
        size_t half = size / 2;
        rpc_frame_reader_feed(reader, data, half);
        size_t n_responses = 0;
        RpcPeer peer = { .origin = "fuzz", .may_mutate = size > 0 && (data[0] & 1) };
        for (int pass = 0; pass < 2; pass++) {
                for (;;) {
                        char *frame = NULL;
                        size_t len;
                        int r = rpc_frame_reader_next(reader, &frame, &len);
                        if (r == 0)
                                break;
                        if (r < 0)
                                continue; /* oversize: the server answers -32001 */
                        rpc_dispatch_text(manager, &peer, 1, frame, len, on_response, &n_responses);
                        free(frame);
                }
                if (pass == 0)
                        rpc_frame_reader_feed(reader, data + half, size - half);
        }
        rpc_frame_reader_free(reader);
        return 0;
}
