/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Small file-system helpers shared by the daemon's modules. */

#include <stddef.h>
#include <sys/types.h>

/* Create `path` and every missing parent (parents 0755, the last `mode`).
 * An existing directory is fine. */
int mkdir_p(const char *path, mode_t mode);
/* Create every missing parent directory of `path` (0755), not path itself. */
int mkdir_parents(const char *path);
/* write() until all of buf is written, retrying EINTR. */
int loop_write(int fd, const void *buf, size_t n);
