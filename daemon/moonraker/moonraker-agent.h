/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * flashd as a Moonraker agent (Moonraker docs/external_api/extensions.md).
 *
 * flashd connects to Moonraker's Unix socket (ETX-framed JSON-RPC 2.0),
 * identifies with server.connection.identify {type: "agent"}, and then:
 *  - answers the requests Moonraker relays from frontends'
 *    server.extensions.request {agent, method, arguments}: Moonraker sends
 *    {"method": method, "params": arguments, "id": <its own id>}; they go
 *    through rpc_dispatch(), the same table as flashd's own socket, and the
 *    reply carries Moonraker's id unchanged;
 *  - forwards flashd's notifications (server_broadcast()) as
 *    connection.send_event {event, data}, which Moonraker hands to every
 *    other connection as notify_agent_event; job progress is coalesced to
 *    at most MOONRAKER_PROGRESS_HZ events per second per job (state and
 *    phase changes go out at once; the last progress is never lost).
 *
 *  - asks Moonraker what Klipper's MCUs run (printer.objects.list, then
 *    printer.objects.query of the `mcu` and `mcu NAME` objects, and of
 *    `configfile`'s `config` for their serial: paths) when it
 *    registers and whenever moonraker_agent_query_mcus() is called; the
 *    answer goes to update_status_apply_moonraker(). flashd never opens a
 *    tty klippy holds, so this is how it learns what such a board runs.
 *
 * It never blocks the loop or fails flashd: the connect is non-blocking,
 * and when Moonraker is not there (yet) or goes away the agent retries with
 * exponential backoff (MOONRAKER_BACKOFF_MIN_USEC .. _MAX_USEC).
 */

#include <errno.h>
#include <jansson.h>
#include <stdint.h>

#include "moonraker/moonraker-config.h"

typedef struct Manager Manager;
typedef struct MoonrakerAgent MoonrakerAgent;

#define MOONRAKER_BACKOFF_MIN_USEC (500ull * 1000ull)
#define MOONRAKER_BACKOFF_MAX_USEC (30ull * 1000ull * 1000ull)
/* connect + identify must finish within this, else we start over */
#define MOONRAKER_IDENTIFY_TIMEOUT_USEC (10ull * 1000ull * 1000ull)
/* job progress events per second per job */
#define MOONRAKER_PROGRESS_HZ 2
/* Unsent output to Moonraker beyond this: it is not reading; reconnect. */
#define MOONRAKER_OUTPUT_MAX (16u * 1024u * 1024u)
/* The first bit keeps agent "client ids" apart from socket clients' ids. */
#define MOONRAKER_CLIENT_ID_BASE (UINT64_C(1) << 63)

typedef enum MoonrakerState {
        MOONRAKER_STATE_WAITING,     /* not connected; the reconnect timer runs */
        MOONRAKER_STATE_CONNECTING,  /* non-blocking connect() in progress */
        MOONRAKER_STATE_IDENTIFYING, /* server.connection.identify sent */
        MOONRAKER_STATE_READY,       /* registered as agent */
        _MOONRAKER_STATE_MAX,
        _MOONRAKER_STATE_INVALID = -EINVAL,
} MoonrakerState;

const char *moonraker_state_to_string(MoonrakerState s);

/* `config` is borrowed and must outlive the agent (the Manager's Config). */
int moonraker_agent_new(MoonrakerAgent **ret, Manager *m, const MoonrakerConfig *config);
MoonrakerAgent *moonraker_agent_free(MoonrakerAgent *a);
/* Start connecting (returns at once). */
int moonraker_agent_start(MoonrakerAgent *a);
MoonrakerState moonraker_agent_get_state(const MoonrakerAgent *a);
/* Ask Moonraker again what the MCUs run (returns at once; the answer is
 * applied when it comes). -ENOTCONN when not registered. */
int moonraker_agent_query_mcus(MoonrakerAgent *a);
/* Klipper's configfile.config ({section: {option: value}}) from the last
 * answer on this connection (borrowed), or NULL. */
json_t *moonraker_agent_get_printer_config(const MoonrakerAgent *a);

/* A notification flashd sends to its clients (`params` borrowed), to be
 * forwarded as an agent event. Usable as a ServerBroadcastHook. */
void moonraker_agent_on_broadcast(const char *method, json_t *params, void *userdata);
