/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The list of method tables. Add one line per module; proto/API.md must
 * document every method (tests/integration/core-api-doc.py checks).
 */
#include <stddef.h>

#include "server/rpc.h"

const RpcMethod *const rpc_method_tables[] = {
        server_methods, device_methods, board_methods, job_methods, rule_methods, update_methods, NULL,
};
