/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The host's Klipper version (`git describe` in the Klipper tree as its
 * owner, klipper-tree.h), read off the main loop: a worker thread runs
 * git, so a slow git (a cold disk, a huge repository, NFS) stalls no
 * client. The answer is cached under a key made of what a commit, a
 * checkout or a tag change: the mtimes and sizes of .git/HEAD, the branch
 * HEAD names, .git/packed-refs, .git/refs/heads and .git/refs/tags. A
 * cached answer whose key still holds is served at once; one older than
 * HOST_VERSION_TTL_USEC is served too while git runs again in the
 * background (an edit of a tracked file makes the tree dirty without
 * touching the key). A changed key, another tree or user, or no answer
 * yet: the caller waits (host_version_on_ready), and gets the answer of
 * the run it waited for.
 */

#include <stdbool.h>
#include <systemd/sd-event.h>

#define HOST_VERSION_TTL_USEC (30ULL * 1000000ULL)

typedef struct HostVersion HostVersion;
typedef void (*HostVersionReady)(void *userdata, bool cancelled);

int host_version_new(HostVersion **ret, sd_event *event);
/* Joins the worker; pending callbacks are called with cancelled = true. */
HostVersion *host_version_free(HostVersion *hv);

/*
 * 1: the answer for `tree` as `user` (the [klipper] user, NULL: the
 * tree's owner) is known: *ret_version or *ret_error (both borrowed until
 * the next main-loop turn; one of them non-NULL). 0: git runs (started
 * now if needed); ask again from a host_version_on_ready() callback.
 * Negative errno: git cannot be started.
 */
int host_version_get(HostVersion *hv, const char *tree, const char *user, const char **ret_version,
                     const char **ret_error);
/* Call `cb` once the running git has finished. */
int host_version_on_ready(HostVersion *hv, HostVersionReady cb, void *userdata);
