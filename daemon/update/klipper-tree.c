/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/macros.h"
#include "update/klipper-tree.h"
#include "util/time-util.h"

void klipper_builder_done(KlipperBuilder *b)
{
        free(b->name);
        free(b->home);
        free(b->groups);
        for (size_t i = 0; b->env && b->env[i]; i++)
                free(b->env[i]);
        free(b->env);
        *b = (KlipperBuilder){};
}

/* flashd's environment with the builder's HOME, USER, LOGNAME and LC_ALL=C. */
static char **builder_env(const KlipperBuilder *b)
{
        static const char *const replaced[] = { "HOME=", "USER=", "LOGNAME=", "LC_ALL=" };
        size_t n = 0, k = 0;
        char **env;

        while (environ && environ[n])
                n++;
        env = calloc(n + ELEMENTSOF(replaced) + 1, sizeof(char *));
        if (!env)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                bool drop = false;
                for (size_t j = 0; j < ELEMENTSOF(replaced); j++)
                        drop |= strncmp(environ[i], replaced[j], strlen(replaced[j])) == 0;
                if (!drop && !(env[k++] = strdup(environ[i])))
                        goto fail;
        }
        if (asprintf(&env[k++], "HOME=%s", b->home) < 0 || asprintf(&env[k++], "USER=%s", b->name) < 0 ||
            asprintf(&env[k++], "LOGNAME=%s", b->name) < 0 || !(env[k++] = strdup("LC_ALL=C")))
                goto fail;
        return env;
fail:
        env[k > 0 ? k - 1 : 0] = NULL;
        for (size_t i = 0; env[i]; i++)
                free(env[i]);
        free(env);
        return NULL;
}

__attribute__((format(printf, 3, 4))) static int error_msg(char **ret_error, int r, const char *fmt, ...)
{
        va_list ap;

        if (ret_error) {
                free(*ret_error);
                va_start(ap, fmt);
                if (vasprintf(ret_error, fmt, ap) < 0)
                        *ret_error = NULL;
                va_end(ap);
        }
        return r;
}

int klipper_builder_resolve(const char *tree, const char *user, KlipperBuilder *ret, char **ret_error)
{
        struct passwd *pw = NULL;
        struct stat st;
        char *end;

        if (!tree || stat(tree, &st) < 0 || !S_ISDIR(st.st_mode))
                return error_msg(ret_error, -ENOENT,
                                 "no Klipper tree at %s: set path in the [klipper] section of flashd.conf",
                                 strna(tree));
        if (user) {
                unsigned long uid = strtoul(user, &end, 10);
                pw = *user && !*end ? getpwuid((uid_t)uid) : getpwnam(user);
                if (!pw)
                        return error_msg(ret_error, -ESRCH,
                                         "no user '%s' (the [klipper] user of flashd.conf)", user);
        } else {
                pw = getpwuid(st.st_uid);
                if (!pw)
                        return error_msg(ret_error, -ESRCH, "the owner of %s is no known user", tree);
        }
        if (pw->pw_uid == 0)
                return error_msg(
                        ret_error, -EPERM,
                        "%s would be built as root: flashd never builds as root; give the tree to the "
                        "user Klipper runs as, or set user in the [klipper] section",
                        tree);
        if (geteuid() != 0 && geteuid() != pw->pw_uid)
                return error_msg(ret_error, -EPERM, "flashd cannot build as %s: it runs as another user",
                                 pw->pw_name);
        ret->uid = pw->pw_uid;
        ret->gid = pw->pw_gid;
        ret->name = strdup(pw->pw_name);
        ret->home = strdup(pw->pw_dir ?: "/");
        if (!ret->name || !ret->home) {
                klipper_builder_done(ret);
                return -ENOMEM;
        }
        /* The child of a threaded flashd may only make system calls
         * between fork and exec (another thread may hold malloc's or
         * NSS's locks at the fork): groups and environment are ready
         * before. */
        int n = 16;
        for (;;) {
                gid_t *g = realloc(ret->groups, (size_t)n * sizeof(gid_t));
                if (!g) {
                        klipper_builder_done(ret);
                        return -ENOMEM;
                }
                ret->groups = g;
                int want = n;
                if (getgrouplist(ret->name, ret->gid, ret->groups, &want) >= 0) {
                        ret->n_groups = (size_t)want;
                        break;
                }
                if (n >= 65536) {
                        klipper_builder_done(ret);
                        return error_msg(ret_error, -E2BIG, "%s is in too many groups", pw->pw_name);
                }
                n = want > n ? want : n * 2;
        }
        ret->env = builder_env(ret);
        if (!ret->env) {
                klipper_builder_done(ret);
                return -ENOMEM;
        }
        return 0;
}

/* stdout to out_fd, stderr to err_fd (-1: the same as stdout). */
__attribute__((noreturn)) static void child(const KlipperBuilder *b, const char *cwd, char *const argv[],
                                            int out_fd, int err_fd)
{
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);

        /* a group of its own, so a timeout kills make's children too */
        (void)setpgid(0, 0);
        int o = out_fd >= 0 ? out_fd : null;
        int e = err_fd >= 0 ? err_fd : o;
        if (null < 0 || dup2(null, STDIN_FILENO) < 0 || dup2(o, STDOUT_FILENO) < 0 ||
            dup2(e, STDERR_FILENO) < 0)
                _exit(126);
        /* drop privileges for good: groups, then gid, then uid */
        if (geteuid() == 0 &&
            (setgroups(b->n_groups, b->groups) < 0 || setresgid(b->gid, b->gid, b->gid) < 0 ||
             setresuid(b->uid, b->uid, b->uid) < 0))
                _exit(126);
        if (geteuid() == 0 || getuid() != b->uid)
                _exit(126);
        if (cwd && chdir(cwd) < 0)
                _exit(126);
        /* the git of a tree owned by this user: no safe.directory trouble */
        execvpe(argv[0], argv, b->env);
        _exit(127);
}

static int spawn(const KlipperBuilder *b, const char *cwd, char *const argv[], int out_fd, int err_fd,
                 pid_t *ret_pid)
{
        pid_t pid = fork();

        if (pid < 0)
                return -errno;
        if (pid == 0)
                child(b, cwd, argv, out_fd, err_fd);
        *ret_pid = pid;
        return 0;
}

int klipper_builder_spawn(const KlipperBuilder *b, const char *cwd, char *const argv[], int out_fd,
                          pid_t *ret_pid)
{
        return spawn(b, cwd, argv, out_fd, -1, ret_pid);
}

int klipper_builder_wait(pid_t pid, uint64_t timeout_usec)
{
        uint64_t deadline = now_usec(CLOCK_MONOTONIC) + timeout_usec;
        int status;

        for (;;) {
                pid_t r = waitpid(pid, &status, WNOHANG);
                if (r == pid)
                        break;
                if (r < 0 && errno != EINTR)
                        return -errno;
                if (now_usec(CLOCK_MONOTONIC) >= deadline) {
                        (void)kill(-pid, SIGKILL);
                        (void)kill(pid, SIGKILL);
                        (void)waitpid(pid, &status, 0);
                        return -ETIMEDOUT;
                }
                /* a child exiting has no fd to wait on here: poll briefly */
                (void)poll(NULL, 0, 10);
        }
        if (WIFEXITED(status))
                return WEXITSTATUS(status);
        return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

static int run(const KlipperBuilder *b, const char *cwd, char *const argv[], int out_fd, int err_fd,
               uint64_t timeout_usec)
{
        pid_t pid = 0;
        int r = spawn(b, cwd, argv, out_fd, err_fd, &pid);

        if (r < 0)
                return r;
        return klipper_builder_wait(pid, timeout_usec);
}

int klipper_builder_run(const KlipperBuilder *b, const char *cwd, char *const argv[], int out_fd,
                        uint64_t timeout_usec)
{
        return run(b, cwd, argv, out_fd, -1, timeout_usec);
}

int klipper_tree_version(const KlipperBuilder *b, const char *tree, char **ret, char **ret_error)
{
        char *argv[] = { "git",    "-C",     (char *)tree, "describe", "--always",
                         "--tags", "--long", "--dirty",    NULL };
        char out_tmpl[] = "/tmp/flashd-describe-XXXXXX", err_tmpl[] = "/tmp/flashd-describe-XXXXXX";
        _cleanup_close_ int out = mkostemp(out_tmpl, O_CLOEXEC);
        _cleanup_close_ int err = mkostemp(err_tmpl, O_CLOEXEC);
        char buf[256], why[256] = "";
        ssize_t n;
        int r;

        if (out < 0 || err < 0)
                return -errno;
        (void)unlink(out_tmpl);
        (void)unlink(err_tmpl);
        /* the version is stdout's first line; what else git (or the
         * loader, or a hook) says goes to stderr and only explains a
         * failure */
        r = run(b, NULL, argv, out, err, 10U * 1000U * 1000U);
        if (r == -ETIMEDOUT)
                return error_msg(ret_error, r, "git describe in %s did not finish within 10 s", tree);
        if (r < 0)
                return error_msg(ret_error, r, "git describe in %s failed: %s", tree, strerror(-r));
        n = pread(out, buf, sizeof(buf) - 1, 0);
        if (n < 0)
                return -errno;
        buf[n] = '\0';
        buf[strcspn(buf, "\n")] = '\0';
        if (r != 0 || !buf[0]) {
                /* git's own complaint ("fatal: ...") comes last */
                char *last = why;
                n = pread(err, why, sizeof(why) - 1, 0);
                why[n > 0 ? n : 0] = '\0';
                for (char *line = strtok(why, "\n"); line; line = strtok(NULL, "\n"))
                        last = line;
                return error_msg(ret_error, -EBADMSG, "git describe in %s failed: %s", tree,
                                 last[0]  ? last
                                 : buf[0] ? buf
                                          : "no output");
        }
        *ret = strdup(buf);
        return *ret ? 0 : -ENOMEM;
}
