/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Small helpers shared by every module: cleanup attributes and ownership
 * transfer in the style of systemd and dbus-broker.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define _cleanup_(f)   __attribute__((cleanup(f)))
#define _unused_       __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _pure_         __attribute__((pure))
#define _public_       __attribute__((visibility("default")))
#define _likely_(x)    (__builtin_expect(!!(x), 1))
#define _unlikely_(x)  (__builtin_expect(!!(x), 0))

#define ELEMENTSOF(x)      (sizeof(x) / sizeof((x)[0]))
#define MIN(a, b)          ((a) < (b) ? (a) : (b))
#define MAX(a, b)          ((a) > (b) ? (a) : (b))
#define DIV_ROUND_UP(x, y) (((x) + (y)-1) / (y))

/* Hand ownership on: returns the value and leaves NULL / -EBADF behind. */
#define TAKE_PTR(p)                         \
        ({                                  \
                __typeof__(p) _took_ = (p); \
                (p) = NULL;                 \
                _took_;                     \
        })
#define TAKE_FD(fd)                   \
        ({                            \
                int _took_fd_ = (fd); \
                (fd) = -EBADF;        \
                _took_fd_;            \
        })

static inline void freep(void *p)
{
        free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline int safe_close(int fd)
{
        if (fd >= 0) {
                int saved = errno;
                close(fd);
                errno = saved;
        }
        return -EBADF;
}
static inline void closep(int *fd)
{
        safe_close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

static inline void fclosep(FILE **f)
{
        if (*f)
                fclose(*f);
}
#define _cleanup_fclose_ _cleanup_(fclosep)

/* Declare a `xxx_freep()` for a type whose destructor returns NULL. */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func) \
        static inline void func##p(type *p)     \
        {                                       \
                if (*p)                         \
                        func(*p);               \
        }

static inline int negative_errno(void)
{
        return errno > 0 ? -errno : -EIO;
}

static inline const char *strempty(const char *s)
{
        return s ? s : "";
}

static inline const char *strna(const char *s)
{
        return s ? s : "n/a";
}

static inline int streq_ptr(const char *a, const char *b)
{
        if (!a || !b)
                return a == b;
        return strcmp(a, b) == 0;
}
#define streq(a, b) (strcmp((a), (b)) == 0)

/* The index of `s` in a table of enum names (NULL entries never match), or
 * -EINVAL: the body of every foo_from_string(). */
static inline int string_table_lookup(const char *const *table, int n, const char *s)
{
        for (int i = 0; s && i < n; i++)
                if (table[i] && streq(table[i], s))
                        return i;
        return -EINVAL;
}
