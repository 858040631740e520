/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Content-addressed image store: <state dir>/images/<sha256 hex>. A queued
 * job (and a rule, daemon/rules) keeps only the hash, so it survives a daemon
 * restart without the client's file. Files are written atomically (temporary
 * file, fsync, rename), so a crash never leaves a half image under its name.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/macros.h"

/* Largest image accepted (documented in proto/API.md, "Jobs"). */
#define IMAGE_STORE_MAX_SIZE (32u * 1024u * 1024u)

typedef struct ImageStore ImageStore;

/* `dir` is created (0700) when missing. */
int image_store_new(ImageStore **ret, const char *dir);
ImageStore *image_store_free(ImageStore *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(ImageStore *, image_store_free);

/* SHA-256 of a buffer as 64 lowercase hex digits + NUL (nettle). */
int image_store_hash(const void *data, size_t size, char ret_hex[static 65]);

/* Store the bytes (no-op when already present); returns the hash. */
int image_store_put(ImageStore *s, const void *data, size_t size, char ret_hex[static 65]);
/* Read the whole image in and check its hash; -ENOENT when missing, -EBADMSG
 * when the file no longer matches its name. */
int image_store_get(ImageStore *s, const char *hex, uint8_t **ret_data, size_t *ret_size);
bool image_store_has(ImageStore *s, const char *hex);
/* -EBUSY while the image is pinned. */
int image_store_remove(ImageStore *s, const char *hex);

/* Keep an image that no job may name any more: a rule's image
 * (daemon/rules) must survive the pruning of the job history, which removes
 * the images of the jobs it drops. Pins count; each pin needs its unpin. */
int image_store_pin(ImageStore *s, const char *hex);
void image_store_unpin(ImageStore *s, const char *hex);
bool image_store_pinned(ImageStore *s, const char *hex);

/* Read all of an fd (a file or a pipe) into memory, at most `max` bytes:
 * -EFBIG beyond. */
int image_read_fd(int fd, size_t max, uint8_t **ret_data, size_t *ret_size);
