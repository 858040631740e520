/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The job.* methods (proto/API.md, "Jobs"; the table job_methods is in
 * server/rpc.h with the others) and what other methods share with them.
 */

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct RpcCall RpcCall;

/* For other methods that take an image the way job.flash does (rule.add):
 * read params.image ({"fd": true} | {"data": base64} | {"path": ...}, an
 * optional "name") into memory with the caller's rights. On failure the
 * call has been answered and a negative errno is returned. */
int job_method_read_image(RpcCall *call, json_t *image, uint8_t **ret_data, size_t *ret_size);
/* The caller's process name (/proc/PID/comm), else "pid N". */
void job_peer_name(pid_t pid, char *buf, size_t size);
