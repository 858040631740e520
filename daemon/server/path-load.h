/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Open a file a client named by path (with the client's rights,
 * peer_open_as()) and read it, on a thread of its own, so that a path
 * on a hung file system, a FUSE mount the client controls, or a
 * credential-switching child the client stopped never stalls the main
 * loop. The result comes back on the main loop; after `timeout_usec` the
 * request is answered with -ETIMEDOUT and whatever the thread still does is
 * thrown away when it ends (at most PATH_LOAD_THREADS_MAX threads at once,
 * stuck ones included: beyond that -EBUSY at once).
 */

#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "server/peer-auth.h"

#define PATH_LOAD_THREADS_MAX  16
#define PATH_LOAD_TIMEOUT_USEC (10ULL * 1000ULL * 1000ULL)

/* Reads the opened file (runs on the loader thread: no logging, no
 * main-loop state). */
typedef int (*PathLoadReadFunc)(int fd, uint8_t **ret, size_t *ret_size);

/* On the main loop, once. r < 0: the open (with `message` from
 * peer_open_as(), or NULL), the read (message NULL) or the timeout
 * (-ETIMEDOUT, with a message) failed. Takes ownership of data and
 * message. */
typedef void (*PathLoadDone)(int r, uint8_t *data, size_t size, char *message, void *userdata);

/* Returns 0 when started (done() will be called), or a negative errno
 * (-EBUSY: too many loads running) and done() is never called. */
int path_load_start(sd_event *e, const PeerCred *peer, const char *path, int flags, PathLoadReadFunc read_fn,
                    uint64_t timeout_usec, PathLoadDone done, void *userdata);

/* Opens a file (runs on the loader thread: no logging, no main-loop
 * state); `ret_resolved` (optional) names what was opened. */
typedef int (*PathOpenFunc)(void *open_data, int *ret_fd, char **ret_resolved, char **ret_message);

/* On the main loop, once: the open file (fd >= 0 when r >= 0) or the
 * failure, as for PathLoadDone. Takes ownership of fd, resolved, message. */
typedef void (*PathOpenDone)(int r, int fd, char *resolved, char *message, void *userdata);

/* As path_load_start(), for a caller with its own rules for opening
 * (`open_fn` with `open_data`, freed by `open_data_free` when the thread is
 * done, also on failure): the file is opened off the main loop and handed
 * over open, not read. `path` names the file in the timeout message. */
int path_open_start(sd_event *e, const char *path, PathOpenFunc open_fn, void *open_data,
                    void (*open_data_free)(void *), uint64_t timeout_usec, PathOpenDone done,
                    void *userdata);
