/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * peer_open_as(): a `path` given by a client is opened with that client's
 * credentials, so a client can never make flashd read or write a file it
 * could not itself read or write. See peer-open.c for the two strategies
 * (switching credentials in a short-lived child when flashd has
 * CAP_SETUID+CAP_SETGID; checking the client's permissions on every path
 * component when it has not).
 */

#include <errno.h>

#include "server/peer-auth.h"

/* How long the credential-switching child may take to open a file. */
#define PEER_OPEN_TIMEOUT_MS 5000

typedef enum PeerOpenMode {
        PEER_OPEN_AUTO,   /* SWITCH if we have CAP_SETUID+CAP_SETGID, else CHECK */
        PEER_OPEN_SWITCH, /* open in a child running with the peer's uid/gids */
        PEER_OPEN_CHECK,  /* walk the path checking the peer's permissions, then open */
        _PEER_OPEN_MODE_MAX,
        _PEER_OPEN_MODE_INVALID = -EINVAL,
} PeerOpenMode;

const char *peer_open_mode_to_string(PeerOpenMode m);
/* The mode AUTO resolves to in this process. */
PeerOpenMode peer_open_mode_effective(void);

/*
 * Open an existing regular file at absolute `path` as `peer` would.
 * flags: O_RDONLY, O_WRONLY or O_RDWR, optionally O_NOFOLLOW; the fd is
 * always O_CLOEXEC|O_NOCTTY and never blocks on open. Only regular files are
 * accepted (no fifos, devices, sockets, directories).
 *
 * On success *ret_fd is the open file. On failure returns a negative errno
 * (-EACCES/-EPERM: the peer may not, -ENOENT, -ENOTDIR, -ELOOP, -EINVAL:
 * not absolute / not a regular file / bad flags, -ETIMEDOUT) and, if
 * ret_message is not NULL, a sentence for the client that says what
 * happened and what to do (malloc'd, NULL on out of memory).
 */
int peer_open_as(const PeerCred *peer, const char *path, int flags, int *ret_fd, char **ret_message);
int peer_open_as_full(const PeerCred *peer, const char *path, int flags, PeerOpenMode mode, int *ret_fd,
                      char **ret_message);
