/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The Unix socket server: accepts clients, reads ETX-framed JSON-RPC
 * messages (proto/rpc-frame.h) with non-blocking I/O, hands each to
 * rpc_dispatch_text(), and queues responses and notifications per client.
 *
 * Limits (proto/API.md, "Limits"): one message may be at most
 * SERVER_INPUT_MAX bytes (a larger one is answered with -32001 and skipped
 * up to its ETX); a client's unsent output may grow to SERVER_OUTPUT_MAX
 * bytes, beyond that the client is disconnected (it is not reading); at
 * most SERVER_CLIENTS_MAX clients at once (fewer with a low fd limit).
 */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "rpc-frame.h"

#define SERVER_INPUT_MAX RPC_FRAME_MAX_DEFAULT
/* Every message but job.flash / rule.add carrying image.data: no request
 * needs more, and a small message cannot cost much to parse. */
#define SERVER_INPUT_SMALL_MAX (64u * 1024u)
/* A message above SERVER_INPUT_SMALL_MAX with more structural characters
 * than this is refused while it arrives (rpc_frame_reader_set_small_limit). */
#define SERVER_INPUT_LARGE_TOKENS 256u
/* Input buffered for all clients together; above it the largest
 * unfinished message is dropped. One full-size message fits. */
#define SERVER_INPUT_TOTAL_MAX SERVER_INPUT_MAX
/* Messages handled for one client before the others get their turn. */
#define SERVER_MESSAGES_PER_WAKEUP 16u
#define SERVER_OUTPUT_MAX          (4u * 1024u * 1024u)
/* Also at most half of RLIMIT_NOFILE. */
#define SERVER_CLIENTS_MAX 1024u
/* How long the listening sockets rest after accept() ran out of fds. */
#define SERVER_ACCEPT_PAUSE_MS 250u

typedef struct Manager Manager;
typedef struct Server Server;

int server_new(Server **ret, Manager *m);
Server *server_free(Server *s);

/* Listen on an fd from socket activation (already bound and listening). */
int server_add_listen_fd(Server *s, int fd);
/* Create, bind and listen on `path` (parent dir created, stale socket
 * unlinked, mode 0660, group `group` if it exists). */
int server_listen_path(Server *s, const char *path, const char *group);

/* Send a notification to every identified client (those that called
 * server.connection.identify). `params` is borrowed (an array). */
int server_broadcast(Server *s, const char *method, json_t *params);

/* Moonraker agent (daemon/moonraker): one hook that sees every
 * notification server_broadcast() sends (`params` borrowed), to forward it
 * as an agent event. NULL removes it. */
typedef void (*ServerBroadcastHook)(const char *method, json_t *params, void *userdata);
void server_set_broadcast_hook(Server *s, ServerBroadcastHook hook, void *userdata);

/* The dispatch callback for socket clients (also used by tests). */
void server_on_response(uint64_t client_id, json_t *response, void *userdata);

size_t server_n_clients(const Server *s);

/* Raise the soft RLIMIT_NOFILE to the hard one (at start, before
 * server_new(), which sizes the client limit from it). */
void server_raise_fd_limit(void);

/* For server.connection.identify: mark a client identified. -ENOENT if gone. */
int server_identify_client(Server *s, uint64_t client_id, const char *name, const char *version,
                           const char *type, const char *url);
