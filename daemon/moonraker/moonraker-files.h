/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Images a frontend uploaded to Moonraker: `image.path` in job.flash through
 * the agent. The path is either absolute or "<root>/<relative>" where <root>
 * is the last component of a configured file root (Moonraker's own naming:
 * "gcodes/klipper.bin", "config/firmware/klipper.bin"). It must resolve,
 * symlinks followed, to a regular file inside one of the roots, and is
 * opened with the permissions of the file user (peer_open_as()), so the
 * agent link reads nothing that user could not read itself.
 */

#include "moonraker/moonraker-config.h"
#include "server/peer-auth.h"

/* The roots in effect: the configured ones, or <home of `user`>/printer_data/
 * {gcodes,config}. NULL-terminated, malloc'd strings; NULL on OOM. */
char **moonraker_file_roots(const MoonrakerConfig *c, uid_t user);
void moonraker_file_roots_free(char **roots);

/* Credentials of file_user (a name or a decimal uid) with its groups. */
int moonraker_file_user_cred(const char *user, PeerCred **ret);

/*
 * Open `path` (see above) read-only as `as`. On success *ret_fd is the file
 * and *ret_resolved its canonical path. On failure a negative errno
 * (-ENOENT, -EACCES, -EPERM, -EXDEV: outside every root, -EINVAL) and a
 * sentence for the frontend in *ret_message (may be NULL on OOM).
 */
int moonraker_file_open(char *const *roots, const PeerCred *as, const char *path, int *ret_fd,
                        char **ret_resolved, char **ret_message);
