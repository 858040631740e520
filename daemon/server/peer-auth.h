/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Who is on the other end of an API connection, and what they may do.
 *
 * - PeerCred: the peer's credentials as the kernel reports them for a Unix
 *   socket (SO_PEERCRED: pid, uid, gid at connect() time; SO_PEERGROUPS:
 *   the supplementary groups). Taken once per connection.
 * - peer_auth_may_mutate(): reading methods are for anyone who can connect
 *   (the socket is 0660 root:flashd); flashing, cancelling and rules are for
 *   root, the daemon's own user and members of the configured group
 *   (config key `flash_group`, default "flashd").
 * - peer_auth_open_as(): a `path` given by a client is opened with that
 *   client's credentials, so a client can never make flashd read or write a
 *   file it could not itself read or write. See peer-auth.c for the two
 *   strategies (switching credentials in a short-lived child when flashd
 *   has CAP_SETUID+CAP_SETGID; checking the client's permissions on every
 *   path component when it has not).
 */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "macros.h"

#define PEER_AUTH_DEFAULT_GROUP "flashd"
/* Long enough for "uid=4294967295(<32-char name>) gid=4294967295 pid=4194304". */
#define PEER_CRED_STRING_MAX 128
/* How long the credential-switching child may take to open a file. */
#define PEER_AUTH_OPEN_TIMEOUT_MS 5000

typedef struct PeerCred {
        pid_t pid;
        uid_t uid;
        gid_t gid;     /* primary group */
        gid_t *groups; /* supplementary groups (may include gid) */
        size_t n_groups;
} PeerCred;

/* Read the credentials of the peer of connected AF_UNIX socket `fd`. */
int peer_cred_new_from_socket(PeerCred **ret, int fd);
/* Build one from explicit values (tests, and callers that already know). */
int peer_cred_new(PeerCred **ret, pid_t pid, uid_t uid, gid_t gid, const gid_t *groups, size_t n_groups);
PeerCred *peer_cred_free(PeerCred *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(PeerCred *, peer_cred_free);

bool peer_cred_in_group(const PeerCred *p, gid_t gid);

/* "uid=1000(alice) gid=1000 pid=4242"; the name is left out if unknown.
 * Returns buf. */
const char *peer_cred_format(const PeerCred *p, char buf[static PEER_CRED_STRING_MAX]);

/* Resolve the `flash_group` config value: a group name or a decimal gid.
 * -ENOENT if no such group exists. */
int peer_auth_lookup_group(const char *name, gid_t *ret_gid);

/* May this peer flash, cancel, or change rules? True for root, for the
 * daemon's own uid, and for peers whose primary or supplementary groups
 * contain flash_group. flash_group == (gid_t) -1 means "no such group":
 * then only root and the daemon's user may. */
bool peer_auth_may_mutate(const PeerCred *peer, gid_t flash_group);

typedef enum PeerAuthOpenMode {
        PEER_AUTH_OPEN_AUTO,   /* SWITCH if we have CAP_SETUID+CAP_SETGID, else CHECK */
        PEER_AUTH_OPEN_SWITCH, /* open in a child running with the peer's uid/gids */
        PEER_AUTH_OPEN_CHECK,  /* walk the path checking the peer's permissions, then open */
        _PEER_AUTH_OPEN_MODE_MAX,
        _PEER_AUTH_OPEN_MODE_INVALID = -EINVAL,
} PeerAuthOpenMode;

const char *peer_auth_open_mode_to_string(PeerAuthOpenMode m);
/* The mode AUTO resolves to in this process. */
PeerAuthOpenMode peer_auth_open_mode_effective(void);

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
int peer_auth_open_as(const PeerCred *peer, const char *path, int flags, int *ret_fd, char **ret_message);
int peer_auth_open_as_full(const PeerCred *peer, const char *path, int flags, PeerAuthOpenMode mode,
                           int *ret_fd, char **ret_message);
