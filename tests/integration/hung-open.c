/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * LD_PRELOAD'ed into flashd by core-limits.py: open() of a path with a
 * component "hung" blocks, like a file on a hung network file system or a
 * FUSE mount whose server does not answer, until the file named by
 * $HUNG_OPEN_RELEASE exists (at most 60 s).
 */
/* Define open and open64 as the separate symbols they are in libc. */
#undef _FILE_OFFSET_BITS
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int open(const char *path, int flags, ...);
int open64(const char *path, int flags, ...);
int openat(int dirfd, const char *path, int flags, ...);
int openat64(int dirfd, const char *path, int flags, ...);

static void maybe_hang(const char *path)
{
        const char *release = getenv("HUNG_OPEN_RELEASE");

        if (!release || !path || !strstr(path, "/hung/"))
                return;
        for (int i = 0; i < 60 * 20 && access(release, F_OK) < 0; i++)
                nanosleep(&(struct timespec){ .tv_nsec = 50 * 1000 * 1000 }, NULL);
}

static mode_t mode_arg(int flags, va_list ap)
{
        return flags & (O_CREAT | __O_TMPFILE) ? va_arg(ap, mode_t) : 0;
}

typedef int (*OpenFunc)(const char *path, int flags, ...);
typedef int (*OpenatFunc)(int dirfd, const char *path, int flags, ...);

static int call_open(const char *name, const char *path, int flags, mode_t mode)
{
        OpenFunc real = (OpenFunc)dlsym(RTLD_NEXT, name);
        maybe_hang(path);
        return real(path, flags, mode);
}

static int call_openat(const char *name, int dirfd, const char *path, int flags, mode_t mode)
{
        OpenatFunc real = (OpenatFunc)dlsym(RTLD_NEXT, name);
        maybe_hang(path);
        return real(dirfd, path, flags, mode);
}

__attribute__((visibility("default"))) int open(const char *path, int flags, ...)
{
        va_list ap;
        va_start(ap, flags);
        mode_t mode = mode_arg(flags, ap);
        va_end(ap);
        return call_open("open", path, flags, mode);
}

__attribute__((visibility("default"))) int open64(const char *path, int flags, ...)
{
        va_list ap;
        va_start(ap, flags);
        mode_t mode = mode_arg(flags, ap);
        va_end(ap);
        return call_open("open64", path, flags, mode);
}

__attribute__((visibility("default"))) int openat(int dirfd, const char *path, int flags, ...)
{
        va_list ap;
        va_start(ap, flags);
        mode_t mode = mode_arg(flags, ap);
        va_end(ap);
        return call_openat("openat", dirfd, path, flags, mode);
}

__attribute__((visibility("default"))) int openat64(int dirfd, const char *path, int flags, ...)
{
        va_list ap;
        va_start(ap, flags);
        mode_t mode = mode_arg(flags, ap);
        va_end(ap);
        return call_openat("openat64", dirfd, path, flags, mode);
}
