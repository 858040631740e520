/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stdarg.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/macros.h"
#include "moonraker/moonraker-files.h"
#include "server/peer-open.h"

void moonraker_file_roots_free(char **roots)
{
        for (size_t i = 0; roots && roots[i]; i++)
                free(roots[i]);
        free(roots);
}

char **moonraker_file_roots(const MoonrakerConfig *c, uid_t user)
{
        size_t n = c->n_file_roots > 0 ? c->n_file_roots : 2;
        char **l = calloc(n + 1, sizeof(char *));
        if (!l)
                return NULL;
        if (c->n_file_roots > 0) {
                for (size_t i = 0; i < n; i++)
                        if (!(l[i] = strdup(c->file_roots[i]))) {
                                moonraker_file_roots_free(l);
                                return NULL;
                        }
                return l;
        }
        /* Moonraker's defaults (its data path ~/printer_data): uploads go to
         * the "gcodes" root, config files to "config". */
        struct passwd *pw = getpwuid(user);
        if (!pw || !pw->pw_dir || pw->pw_dir[0] != '/')
                return l; /* no home: no roots, every path is refused */
        if (asprintf(&l[0], "%s/printer_data/gcodes", pw->pw_dir) < 0 ||
            asprintf(&l[1], "%s/printer_data/config", pw->pw_dir) < 0) {
                l[0] = l[1] = NULL;
                moonraker_file_roots_free(l);
                return NULL;
        }
        return l;
}

int moonraker_file_user_cred(const char *user, PeerCred **ret)
{
        struct passwd *pw;
        char *end = NULL;
        unsigned long u = strtoul(user, &end, 10);

        errno = 0;
        pw = end && end != user && *end == '\0' ? getpwuid((uid_t)u) : getpwnam(user);
        if (!pw)
                return errno > 0 ? -errno : -ESRCH;

        int n = 64;
        _cleanup_free_ gid_t *groups = NULL;
        for (int tries = 0; tries < 4; tries++) {
                gid_t *g = realloc(groups, (size_t)n * sizeof(gid_t));
                if (!g)
                        return -ENOMEM;
                groups = g;
                int want = n;
                if (getgrouplist(pw->pw_name, pw->pw_gid, groups, &want) >= 0) {
                        n = want;
                        return peer_cred_new(ret, 0, pw->pw_uid, pw->pw_gid, groups, (size_t)n);
                }
                n = want > n ? want : n * 2;
        }
        return -E2BIG;
}

static const char *last_component(const char *p)
{
        const char *s = strrchr(p, '/');
        return s ? s + 1 : p;
}

/* Is `path` (canonical) inside `root` (canonical)? */
static bool path_inside(const char *path, const char *root)
{
        size_t n = strlen(root);
        if (n == 1 && root[0] == '/')
                return true;
        return strncmp(path, root, n) == 0 && path[n] == '/';
}

static bool inside_any(char *const *roots, const char *resolved)
{
        for (size_t i = 0; roots && roots[i]; i++) {
                _cleanup_free_ char *root = realpath(roots[i], NULL);
                if (root && path_inside(resolved, root))
                        return true;
        }
        return false;
}

static int fail(char **ret_message, int r, const char *format, ...) __attribute__((format(printf, 3, 4)));
static int fail(char **ret_message, int r, const char *format, ...)
{
        va_list ap;
        va_start(ap, format);
        if (vasprintf(ret_message, format, ap) < 0)
                *ret_message = NULL;
        va_end(ap);
        return r;
}

static char *roots_list(char *const *roots)
{
        size_t len = 1;
        for (size_t i = 0; roots && roots[i]; i++)
                len += strlen(roots[i]) + 2;
        char *s = calloc(1, len);
        for (size_t i = 0; s && roots && roots[i]; i++) {
                if (i > 0)
                        strcat(s, ", ");
                strcat(s, roots[i]);
        }
        return s;
}

int moonraker_file_open(char *const *roots, const PeerCred *as, const char *path, int *ret_fd,
                        char **ret_resolved, char **ret_message)
{
        _cleanup_free_ char *candidate = NULL, *resolved = NULL, *list = roots_list(roots), *why = NULL;
        _cleanup_close_ int fd = -EBADF;
        int r;

        *ret_message = NULL;
        if (!roots || !roots[0])
                return fail(ret_message, -EXDEV,
                            "image.path is not available: no file roots (set file_root in [moonraker] of "
                            "flashd.conf); send the image as base64 data instead");
        if (path[0] == '/')
                candidate = strdup(path);
        else {
                /* "<root name>/<relative path>", as Moonraker names its files. */
                size_t k = strcspn(path, "/");
                for (size_t i = 0; roots[i] && !candidate; i++) {
                        const char *name = last_component(roots[i]);
                        if (strlen(name) == k && strncmp(name, path, k) == 0 && path[k] == '/')
                                if (asprintf(&candidate, "%s%s", roots[i], path + k) < 0)
                                        candidate = NULL;
                }
                if (!candidate)
                        return fail(ret_message, -EXDEV,
                                    "image.path \"%s\" names no file root: give \"<root>/<file>\" with a "
                                    "root of %s, or an absolute path inside one",
                                    path, strna(list));
        }
        if (!candidate)
                return -ENOMEM;

        resolved = realpath(candidate, NULL);
        if (!resolved)
                return fail(ret_message, -errno, "cannot resolve image.path %s: %s", candidate,
                            strerror(errno));
        if (!inside_any(roots, resolved))
                return fail(ret_message, -EXDEV,
                            "image.path %s resolves to %s, which is outside Moonraker's file roots (%s)",
                            path, resolved, strna(list));

        /* Opened with the file user's permissions; O_NOFOLLOW since the
         * path is already resolved. */
        r = peer_open_as(as, resolved, O_RDONLY | O_NOFOLLOW, &fd, &why);
        if (r < 0)
                return fail(ret_message, r, "%s", why ? why : strerror(-r));

        /* A directory on the way may have been swapped for a symlink after
         * realpath(): check where the open file really is. */
        char proc[64], where[PATH_MAX];
        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
        ssize_t n = readlink(proc, where, sizeof(where) - 1);
        if (n < 0)
                return fail(ret_message, -errno, "cannot check where %s is: %s", resolved, strerror(errno));
        where[n] = '\0';
        if (!inside_any(roots, where))
                return fail(ret_message, -EXDEV, "image.path %s moved outside Moonraker's file roots", path);

        *ret_fd = TAKE_FD(fd);
        *ret_resolved = TAKE_PTR(resolved);
        return 0;
}
