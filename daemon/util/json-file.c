/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/fs-util.h"
#include "util/json-file.h"
#include "util/macros.h"

int json_file_write_atomic(const char *path, const json_t *value, mode_t mode)
{
        _cleanup_free_ char *text = json_dumps(value, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_ENCODE_ANY);
        _cleanup_free_ char *tmp = NULL, *dir_copy = NULL;
        int r;

        if (!text)
                return -ENOMEM;
        if (asprintf(&tmp, "%s.tmp.XXXXXX", path) < 0)
                return -ENOMEM;
        _cleanup_close_ int fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return -errno;
        r = loop_write(fd, text, strlen(text));
        if (r >= 0)
                r = loop_write(fd, "\n", 1);
        if (r >= 0 && fchmod(fd, mode) < 0)
                r = -errno;
        if (r >= 0 && fsync(fd) < 0)
                r = -errno;
        if (r >= 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0) {
                unlink(tmp);
                return r;
        }

        /* Make the rename itself durable. */
        dir_copy = strdup(path);
        if (!dir_copy)
                return -ENOMEM;
        _cleanup_close_ int dfd = open(dirname(dir_copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0)
                (void)fsync(dfd);
        return 0;
}

int json_file_read(const char *path, json_t **ret, char **ret_error)
{
        json_error_t error;
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

        if (fd < 0)
                return -errno;
        json_t *v = json_loadfd(fd, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &error);
        if (!v) {
                if (ret_error &&
                    asprintf(ret_error, "%s:%d:%d: %s", path, error.line, error.column, error.text) < 0)
                        *ret_error = NULL;
                return -EBADMSG;
        }
        *ret = v;
        return 0;
}
