/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The user's Klipper source tree: who owns it, what version it is, and
 * running programs in it as that user. A child never keeps root: it drops
 * to the builder (the configured user, else the owner of the tree) before
 * exec, and a tree that would be built as root is refused.
 *
 * Blocking (waitpid with a deadline): call from a worker thread, or for
 * the short `git describe` from the main loop.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "update/klipper-config.h"

typedef struct KlipperBuilder {
        uid_t uid;
        gid_t gid;
        char *name; /* user name, for messages and HOME */
        char *home;
        gid_t *groups; /* supplementary groups, looked up before any fork */
        size_t n_groups;
        char **env; /* the child's environment, built before any fork */
} KlipperBuilder;

void klipper_builder_done(KlipperBuilder *b);
/* -ENOENT no tree, -ESRCH unknown user, -EPERM the builder would be root
 * (or flashd is not root and is not the builder); *ret_error says so. */
int klipper_builder_resolve(const char *tree, const char *user, KlipperBuilder *ret, char **ret_error);

/*
 * fork + drop to the builder + exec argv[0] (PATH lookup) in `cwd`.
 * stdout and stderr go to out_fd (both; -1: /dev/null), stdin /dev/null.
 * Waits up to timeout_usec (then SIGKILLs the process group).
 * Returns the exit status (>= 0), -ETIMEDOUT, or a negative errno.
 */
int klipper_builder_run(const KlipperBuilder *b, const char *cwd, char *const argv[], int out_fd,
                        uint64_t timeout_usec);

/* The same in two steps, for a caller that reads out_fd while it runs. */
int klipper_builder_spawn(const KlipperBuilder *b, const char *cwd, char *const argv[], int out_fd,
                          pid_t *ret_pid);
int klipper_builder_wait(pid_t pid, uint64_t timeout_usec);

/* `git -C tree describe --always --tags --long --dirty`, as Klipper's
 * scripts/buildcommands.py computes the version: trimmed stdout. */
int klipper_tree_version(const KlipperBuilder *b, const char *tree, char **ret, char **ret_error);
