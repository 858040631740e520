/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <nettle/sha2.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/stat.h>

#include "jobs/image-store.h"
#include "util/fs-util.h"

struct ImageStore {
        char *dir;
        int dir_fd;
        char (*pins)[65]; /* one entry per image_store_pin() (rules' images) */
        size_t n_pins;
};

static bool hex_valid(const char *hex)
{
        if (!hex || strlen(hex) != 64)
                return false;
        for (size_t i = 0; i < 64; i++)
                if (!((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f')))
                        return false;
        return true;
}

int image_store_new(ImageStore **ret, const char *dir)
{
        _cleanup_free_ ImageStore *s = NULL;
        _cleanup_free_ char *copy = NULL;
        _cleanup_close_ int fd = -EBADF;

        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                return -errno;
        fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        copy = strdup(dir);
        s = calloc(1, sizeof(*s));
        if (!copy || !s)
                return -ENOMEM;
        s->dir = TAKE_PTR(copy);
        s->dir_fd = TAKE_FD(fd);
        *ret = TAKE_PTR(s);
        return 0;
}

ImageStore *image_store_free(ImageStore *s)
{
        if (!s)
                return NULL;
        safe_close(s->dir_fd);
        free(s->dir);
        free(s->pins);
        free(s);
        return NULL;
}

int image_store_hash(const void *data, size_t size, char ret_hex[static 65])
{
        struct sha256_ctx ctx;
        uint8_t md[SHA256_DIGEST_SIZE];

        sha256_init(&ctx);
        sha256_update(&ctx, size, data);
        sha256_digest(&ctx, sizeof(md), md);
        for (size_t i = 0; i < sizeof(md); i++)
                snprintf(ret_hex + 2 * i, 3, "%02x", md[i]);
        return 0;
}

int image_store_put(ImageStore *s, const void *data, size_t size, char ret_hex[static 65])
{
        char hex[65], tmp[80];
        _cleanup_close_ int fd = -EBADF;
        int r;

        if (size > IMAGE_STORE_MAX_SIZE)
                return -EFBIG;
        r = image_store_hash(data, size, hex);
        if (r < 0)
                return r;
        if (image_store_has(s, hex)) {
                memcpy(ret_hex, hex, 65);
                return 0;
        }

        snprintf(tmp, sizeof(tmp), ".%.16s.%d.tmp", hex, (int)getpid());
        fd = openat(s->dir_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
                return -errno;
        r = loop_write(fd, data, size);
        if (r >= 0 && fsync(fd) < 0)
                r = -errno;
        if (r >= 0 && renameat(s->dir_fd, tmp, s->dir_fd, hex) < 0)
                r = -errno;
        if (r < 0) {
                (void)unlinkat(s->dir_fd, tmp, 0);
                return r;
        }
        (void)fsync(s->dir_fd);
        memcpy(ret_hex, hex, 65);
        return 0;
}

bool image_store_has(ImageStore *s, const char *hex)
{
        struct stat st;

        return hex_valid(hex) && fstatat(s->dir_fd, hex, &st, 0) >= 0 && S_ISREG(st.st_mode);
}

int image_read_fd(int fd, size_t max, uint8_t **ret_data, size_t *ret_size)
{
        _cleanup_free_ uint8_t *buf = NULL;
        size_t size = 0, alloc = 0;
        struct stat st;
        bool regular;

        /* A regular file is read from its start whatever its offset (an fd
         * a client passed may have been read already); a pipe as it comes. */
        if (fstat(fd, &st) < 0)
                return -errno;
        regular = S_ISREG(st.st_mode);
        if (regular && (uint64_t)st.st_size > max)
                return -EFBIG;
        for (;;) {
                ssize_t k;

                if (size == alloc) {
                        size_t n = alloc ? alloc * 2 : 64 * 1024;
                        uint8_t *p;
                        if (alloc > max + 1)
                                return -EFBIG;
                        p = realloc(buf, n);
                        if (!p)
                                return -ENOMEM;
                        buf = p;
                        alloc = n;
                }
                k = regular ? pread(fd, buf + size, alloc - size, (off_t)size)
                            : read(fd, buf + size, alloc - size);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        break;
                size += (size_t)k;
                if (size > max)
                        return -EFBIG;
        }
        *ret_data = TAKE_PTR(buf);
        *ret_size = size;
        return 0;
}

int image_store_get(ImageStore *s, const char *hex, uint8_t **ret_data, size_t *ret_size)
{
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ uint8_t *data = NULL;
        char check[65];
        size_t size = 0;
        int r;

        if (!hex_valid(hex))
                return -EINVAL;
        fd = openat(s->dir_fd, hex, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        r = image_read_fd(fd, IMAGE_STORE_MAX_SIZE, &data, &size);
        if (r < 0)
                return r;
        r = image_store_hash(data, size, check);
        if (r < 0)
                return r;
        if (!streq(check, hex))
                return -EBADMSG;
        *ret_data = TAKE_PTR(data);
        *ret_size = size;
        return 0;
}

int image_store_remove(ImageStore *s, const char *hex)
{
        if (!hex_valid(hex))
                return -EINVAL;
        if (image_store_pinned(s, hex))
                return -EBUSY;
        if (unlinkat(s->dir_fd, hex, 0) < 0)
                return -errno;
        return 0;
}

int image_store_pin(ImageStore *s, const char *hex)
{
        char(*p)[65];

        if (!hex_valid(hex))
                return -EINVAL;
        p = realloc(s->pins, (s->n_pins + 1) * sizeof(*p));
        if (!p)
                return -ENOMEM;
        s->pins = p;
        memcpy(s->pins[s->n_pins++], hex, 65);
        return 0;
}

void image_store_unpin(ImageStore *s, const char *hex)
{
        for (size_t i = 0; hex && i < s->n_pins; i++)
                if (streq(s->pins[i], hex)) {
                        memmove(s->pins + i, s->pins + i + 1, (s->n_pins - i - 1) * sizeof(*s->pins));
                        s->n_pins--;
                        return;
                }
}

bool image_store_pinned(ImageStore *s, const char *hex)
{
        for (size_t i = 0; hex && i < s->n_pins; i++)
                if (streq(s->pins[i], hex))
                        return true;
        return false;
}
