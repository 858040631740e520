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
 *
 * Opening a file as the peer: peer-open.h.
 */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "util/macros.h"

#define PEER_AUTH_DEFAULT_GROUP "flashd"
/* Long enough for "uid=4294967295(<32-char name>) gid=4294967295 pid=4194304". */
#define PEER_CRED_STRING_MAX 128

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
