/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Small JSON state files (jobs, rules, history) written atomically: the
 * content goes to a temporary file in the same directory, is fsync'd, and
 * renamed over the target, and the directory is fsync'd, so after a crash
 * or power loss the file holds either the old or the new content, never
 * half of one.
 */

#include <jansson.h>
#include <sys/types.h>

/* Write `value` (any JSON value) to `path` with `mode` (e.g. 0640). */
int json_file_write_atomic(const char *path, const json_t *value, mode_t mode);

/* Read and parse `path`. -ENOENT when absent; -EBADMSG when it is not
 * valid JSON (*ret_error, if given, gets a malloc'd "file:line:col: why"). */
int json_file_read(const char *path, json_t **ret, char **ret_error);
