/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/fs-util.h"
#include "util/json-file.h"
#include "util/macros.h"
#include "update/profile-store.h"

bool profile_name_valid(const char *name)
{
        size_t n = name ? strlen(name) : 0;
        if (n == 0 || n > 64 || name[0] == '.')
                return false;
        for (size_t i = 0; i < n; i++)
                if (!isalnum((unsigned char)name[i]) && !strchr("-_.", name[i]))
                        return false;
        return true;
}

char *profile_kconfig_mcu(const char *kconfig, size_t len)
{
        static const char key[] = "CONFIG_MCU=\"";
        const char *p = kconfig, *end = kconfig + len;

        while (p < end) {
                const char *nl = memchr(p, '\n', end - p);
                const char *le = nl ? nl : end;
                if ((size_t)(le - p) > sizeof(key) - 1 && memcmp(p, key, sizeof(key) - 1) == 0) {
                        const char *v = p + sizeof(key) - 1;
                        const char *q = memchr(v, '"', le - v);
                        if (q && q > v)
                                return strndup(v, q - v);
                }
                p = le + 1;
        }
        return NULL;
}

static char *path_of(const char *state_dir, const char *name, const char *suffix)
{
        char *p;
        if (asprintf(&p, "%s/profiles/%s%s", state_dir, name, suffix) < 0)
                return NULL;
        return p;
}

int profile_store_get(const char *state_dir, const char *name, json_t **ret)
{
        _cleanup_free_ char *p = NULL;

        if (!profile_name_valid(name))
                return -ENOENT;
        p = path_of(state_dir, name, ".json");
        if (!p)
                return -ENOMEM;
        return json_file_read(p, ret, NULL);
}

int profile_store_add(const char *state_dir, const char *name, const char *board, const char *mcu_name,
                      const char *kconfig, size_t len, bool replace, json_t **ret, char **ret_error)
{
        _cleanup_free_ char *dir = NULL, *cfg = NULL, *tmp = NULL, *meta = NULL, *mcu = NULL;
        json_auto_t *o = NULL;
        _cleanup_close_ int fd = -EBADF;
        int r;

        if (!profile_name_valid(name))
                return -EINVAL;
        mcu = profile_kconfig_mcu(kconfig, len);
        if (!mcu) {
                if (ret_error)
                        *ret_error = strdup("the .config names no CONFIG_MCU: is it the output of Klipper's "
                                            "`make menuconfig`?");
                return -EINVAL;
        }
        if (asprintf(&dir, "%s/profiles", state_dir) < 0)
                return -ENOMEM;
        r = mkdir_p(dir, 0755);
        if (r < 0)
                return r;
        cfg = path_of(state_dir, name, ".config");
        meta = path_of(state_dir, name, ".json");
        if (!cfg || !meta || asprintf(&tmp, "%s.tmp", cfg) < 0)
                return -ENOMEM;
        if (!replace && access(meta, F_OK) == 0)
                return -EEXIST;
        /* readable by the builder, who is not flashd */
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
                return -errno;
        if (write(fd, kconfig, len) != (ssize_t)len || fsync(fd) < 0) {
                r = -errno ?: -EIO;
                (void)unlink(tmp);
                return r;
        }
        if (rename(tmp, cfg) < 0)
                return -errno;
        o = json_pack("{s:s,s:s,s:s,s:s,s:s}", "name", name, "board", board, "mcu_name", mcu_name ?: "mcu",
                      "mcu", mcu, "kconfig", cfg);
        if (!o)
                return -ENOMEM;
        r = json_file_write_atomic(meta, o, 0644);
        if (r < 0)
                return r;
        if (ret)
                *ret = json_incref(o);
        return 0;
}

static int by_name(const void *a, const void *b)
{
        return strcmp(json_string_value(json_object_get(*(json_t *const *)a, "name")),
                      json_string_value(json_object_get(*(json_t *const *)b, "name")));
}

int profile_store_list(const char *state_dir, json_t **ret)
{
        _cleanup_free_ char *dir = NULL;
        json_auto_t *arr = json_array();
        DIR *d;
        struct dirent *de;

        if (!arr || asprintf(&dir, "%s/profiles", state_dir) < 0)
                return -ENOMEM;
        d = opendir(dir);
        if (d) {
                while ((de = readdir(d))) {
                        size_t n = strlen(de->d_name);
                        json_t *o = NULL;
                        if (n <= 5 || strcmp(de->d_name + n - 5, ".json") != 0)
                                continue;
                        _cleanup_free_ char *name = strndup(de->d_name, n - 5);
                        if (!name) {
                                closedir(d);
                                return -ENOMEM;
                        }
                        if (profile_store_get(state_dir, name, &o) >= 0 && json_is_object(o) &&
                            json_is_string(json_object_get(o, "name")))
                                json_array_append_new(arr, o);
                        else
                                json_decref(o);
                }
                closedir(d);
        } else if (errno != ENOENT)
                return -errno;
        /* sort: copy out, qsort, put back */
        size_t n = json_array_size(arr);
        if (n > 1) {
                json_t **v = calloc(n, sizeof(*v));
                if (!v)
                        return -ENOMEM;
                for (size_t i = 0; i < n; i++)
                        v[i] = json_incref(json_array_get(arr, i));
                qsort(v, n, sizeof(*v), by_name);
                json_array_clear(arr);
                for (size_t i = 0; i < n; i++)
                        json_array_append_new(arr, v[i]);
                free(v);
        }
        *ret = json_incref(arr);
        return 0;
}

int profile_store_remove(const char *state_dir, const char *name)
{
        _cleanup_free_ char *cfg = NULL, *meta = NULL;

        if (!profile_name_valid(name))
                return -ENOENT;
        cfg = path_of(state_dir, name, ".config");
        meta = path_of(state_dir, name, ".json");
        if (!cfg || !meta)
                return -ENOMEM;
        if (unlink(meta) < 0)
                return -errno;
        (void)unlink(cfg);
        return 0;
}

int profile_store_find_mcu(const char *state_dir, const char *mcu_name, json_t **ret)
{
        json_auto_t *all = NULL;
        size_t i;
        json_t *o;
        int r;

        r = profile_store_list(state_dir, &all);
        if (r < 0)
                return r;
        json_array_foreach (all, i, o)
                if (streq(json_string_value(json_object_get(o, "mcu_name")) ?: "", mcu_name)) {
                        *ret = json_incref(o);
                        return 0;
                }
        return -ENOENT;
}
