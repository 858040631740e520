/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Opening a client's path as that client: the two ways of doing it safely.
 *
 * SWITCH (flashd has CAP_SETUID and CAP_SETGID, e.g. runs as root): fork a
 * short-lived child that closes every inherited fd, becomes the client
 * (setgroups, setresgid, setresuid), opens the path with O_NONBLOCK and
 * hands the fd back over a socketpair with SCM_RIGHTS. The kernel does all
 * the checking (modes, ACLs, LSMs, mount options) exactly as for the
 * client. The child only makes raw system calls: the daemon has threads,
 * and after fork() only async-signal-safe calls are allowed (no malloc, no
 * interposed libc wrappers such as the sanitizers' or umockdev's).
 *
 * CHECK (the hardened unit: flashd runs as user flashd without
 * capabilities and cannot become the client): walk the path one component
 * at a time with O_PATH|O_NOFOLLOW, resolving symlinks ourselves, and
 * require that the client has search permission on every directory and
 * read (write) permission on the file by the mode bits and its uid, gid and
 * supplementary groups. Inodes that carry a POSIX ACL are refused (the ACL
 * could deny the client what the mode bits seem to grant). The file is then
 * reopened through /proc/self/fd, so what is opened is the inode that was
 * checked. flashd must also be able to read the file itself, so in this
 * mode only files readable by both are accepted; the client is told to pass
 * an fd or the data instead. LSM confinement of the client is not modelled.
 */
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/capability.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <linux/magic.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>

#include "peer-open.h"
#include "util/time-util.h"

#define SYMLINK_FOLLOW_MAX 40
/* The child's answer when it could not become the client (outside errno's range). */
#define SWITCH_FAILED (-0x10000L)

/* Detail for "the client may, flashd may not" (compared by address). */
static const char FLASHD_CANNOT_READ[] = "flashd cannot read it";

const char *peer_open_mode_to_string(PeerOpenMode m)
{
        switch (m) {
        case PEER_OPEN_AUTO:
                return "auto";
        case PEER_OPEN_SWITCH:
                return "switch";
        case PEER_OPEN_CHECK:
                return "check";
        case _PEER_OPEN_MODE_MAX:
        case _PEER_OPEN_MODE_INVALID:
                break;
        }
        return NULL;
}

static bool have_setid_caps(void)
{
        struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
        struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3] = {};
        uint32_t want = (1U << CAP_SETUID) | (1U << CAP_SETGID);

        if (syscall(SYS_capget, &h, d) < 0)
                return false;
        return (d[0].effective & want) == want;
}

PeerOpenMode peer_open_mode_effective(void)
{
        return have_setid_caps() ? PEER_OPEN_SWITCH : PEER_OPEN_CHECK;
}

_printf_(2, 3) static void set_message(char **ret_message, const char *fmt, ...)
{
        va_list ap;
        char *s;

        if (!ret_message)
                return;
        va_start(ap, fmt);
        if (vasprintf(&s, fmt, ap) < 0)
                s = NULL;
        va_end(ap);
        *ret_message = s;
}

static const char *access_verb(int flags)
{
        switch (flags & O_ACCMODE) {
        case O_WRONLY:
                return "write";
        case O_RDWR:
                return "read and write";
        default:
                return "read";
        }
}

/* Turn an errno from either strategy into the sentence for the client. */
static int open_failed(int r, const PeerCred *peer, const char *path, int flags, const char *detail,
                       char **ret_message)
{
        char who[PEER_CRED_STRING_MAX];

        peer_cred_format(peer, who);
        switch (-r) {
        case EACCES:
        case EPERM:
                if (detail == FLASHD_CANNOT_READ) {
                        set_message(
                                ret_message,
                                "permission denied: flashd runs unprivileged and cannot read %s itself, so "
                                "it "
                                "accepts a path from the client (%s) only for files both may read; pass the "
                                "file itself (flashctl sends an open file descriptor) or upload its data",
                                path, who);
                        return -EACCES;
                }
                set_message(ret_message,
                            "permission denied: the client (%s) may not %s %s%s%s; pass the file itself "
                            "(flashctl sends an open file descriptor) or upload its data",
                            who, access_verb(flags), path, detail ? ": " : "", strempty(detail));
                return -EACCES;
        case ENOENT:
                set_message(ret_message,
                            "%s does not exist as seen by flashd (the service has a /tmp of its own, so "
                            "files in the client's /tmp are not visible); pass the file itself or upload "
                            "its data",
                            path);
                break;
        case ENOTDIR:
                set_message(ret_message, "%s: a component of the path is not a directory", path);
                break;
        case ELOOP:
                set_message(ret_message, "%s: too many symbolic links, or the file is a symbolic link",
                            path);
                break;
        case ETIMEDOUT:
                set_message(ret_message,
                            "opening %s took longer than %d s; is it on a hung network file system?", path,
                            PEER_OPEN_TIMEOUT_MS / 1000);
                break;
        case EISDIR:
        case EINVAL:
                set_message(ret_message, "%s%s%s", path, detail ? ": " : "", strempty(detail));
                break;
        default:
                set_message(ret_message, "cannot open %s: %s", path, strerror(-r));
                break;
        }
        return r;
}

static int validate_request(const char *path, int flags, const char **ret_detail)
{
        const int allowed = O_ACCMODE | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;

        if ((flags & ~allowed) != 0 || (flags & O_ACCMODE) == O_ACCMODE) {
                *ret_detail = "unsupported open flags";
                return -EINVAL;
        }
        if (!path || path[0] != '/') {
                *ret_detail =
                        "the path must be absolute (flashd does not know the client's working directory)";
                return -EINVAL;
        }
        if (strlen(path) >= PATH_MAX) {
                *ret_detail = NULL;
                return -ENAMETOOLONG;
        }
        if (path[strlen(path) - 1] == '/') {
                *ret_detail = "not a regular file";
                return -EINVAL;
        }
        return 0;
}

/* After a successful open: it must be a regular file, and the caller gets a
 * blocking fd. */
/* Kernel file systems whose files show mode bits the kernel does not go
 * by (/proc/<pid>/maps is 0444 but readable only by its owner) and that
 * never hold an image. Checked on the opened file, so a symlink or a bind
 * mount elsewhere does not get around it. */
static bool is_kernel_fs(int fd)
{
        static const unsigned long magic[] = {
                PROC_SUPER_MAGIC,   SYSFS_MAGIC,         DEBUGFS_MAGIC, TRACEFS_MAGIC,  SECURITYFS_MAGIC,
                CGROUP_SUPER_MAGIC, CGROUP2_SUPER_MAGIC, BPF_FS_MAGIC,  EFIVARFS_MAGIC,
        };
        struct statfs sfs;

        if (fstatfs(fd, &sfs) < 0)
                return false;
        for (size_t i = 0; i < ELEMENTSOF(magic); i++)
                if ((unsigned long)sfs.f_type == magic[i])
                        return true;
        return false;
}

static int finish_fd(int fd, const char **ret_detail)
{
        struct stat st;
        int fl;

        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode)) {
                *ret_detail = "not a regular file";
                return S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
        }
        if (is_kernel_fs(fd)) {
                *ret_detail = "it is a kernel file (/proc, /sys, ...), never an image, and flashd does not "
                              "read those for clients";
                return -EACCES;
        }
        fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
                return -errno;
        return 0;
}

/* ---- SWITCH: open in a child with the client's credentials ---- */

/* In the forked child: become the peer and open the file. Raw system calls
 * only. Returns the fd or a negative errno. */
static long child_become_and_open(int sock, const PeerCred *peer, const char *path, int flags, long max_fd)
{
        struct statx stx = {};
        long fd;

        /* Not dumpable, so the client cannot ptrace us once we are its uid. */
        syscall(SYS_prctl, PR_SET_DUMPABLE, 0, 0, 0, 0);
        /* Drop every fd inherited from the daemon: other clients, devices. */
        if ((sock > 3 && syscall(SYS_close_range, 3U, (unsigned)sock - 1, 0U) < 0) ||
            syscall(SYS_close_range, (unsigned)sock + 1, ~0U, 0U) < 0)
                for (long i = 3; i < max_fd; i++)
                        if (i != sock)
                                syscall(SYS_close, i);

        if (syscall(SYS_setgroups, peer->n_groups, peer->groups) < 0 ||
            syscall(SYS_setresgid, peer->gid, peer->gid, peer->gid) < 0 ||
            syscall(SYS_setresuid, peer->uid, peer->uid, peer->uid) < 0)
                return SWITCH_FAILED;
        /* Changing credentials resets dumpable to fs.suid_dumpable; set it again. */
        syscall(SYS_prctl, PR_SET_DUMPABLE, 0, 0, 0, 0);

        fd = syscall(SYS_openat, AT_FDCWD, path, flags | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (syscall(SYS_statx, (int)fd, "", AT_EMPTY_PATH, STATX_TYPE, &stx) < 0)
                return -errno;
        if (!S_ISREG(stx.stx_mode))
                return S_ISDIR(stx.stx_mode) ? -EISDIR : -EINVAL;
        return fd;
}

/* Runs in the forked child; never returns. Sends an int32 (0 or -errno) and,
 * on success, the fd. */
_Noreturn static void child_open(int sock, const PeerCred *peer, const char *path, int flags, long max_fd)
{
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int))];
        } control = {};
        long fd = child_become_and_open(sock, peer, path, flags, max_fd);
        int32_t err = fd < 0 ? (int32_t)fd : 0;
        struct iovec iov = { .iov_base = &err, .iov_len = sizeof(err) };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

        if (fd >= 0) {
                int ifd = (int)fd;
                struct cmsghdr *c;

                mh.msg_control = control.buf;
                mh.msg_controllen = sizeof(control.buf);
                c = CMSG_FIRSTHDR(&mh);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int));
                memcpy(CMSG_DATA(c), &ifd, sizeof(int));
        }
        syscall(SYS_sendmsg, sock, &mh, MSG_NOSIGNAL);
        syscall(SYS_exit_group, 0);
        __builtin_unreachable();
}

static int receive_fd(int sock, int *ret_fd, const char **ret_detail)
{
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int))];
        } control = {};
        int32_t err = 0;
        struct iovec iov = { .iov_base = &err, .iov_len = sizeof(err) };
        struct msghdr mh = {
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = control.buf,
                .msg_controllen = sizeof(control.buf),
        };
        int64_t deadline = (int64_t)(now_usec(CLOCK_MONOTONIC) / USEC_PER_MSEC) + PEER_OPEN_TIMEOUT_MS;
        _cleanup_close_ int fd = -EBADF;
        ssize_t n;

        for (;;) {
                struct pollfd p = { .fd = sock, .events = POLLIN };
                int64_t left = deadline - (int64_t)(now_usec(CLOCK_MONOTONIC) / USEC_PER_MSEC);
                int k;

                if (left <= 0)
                        return -ETIMEDOUT;
                k = poll(&p, 1, (int)left);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                if (k == 0)
                        return -ETIMEDOUT;
                break;
        }

        n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        if (n < 0)
                return -errno;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
                    c->cmsg_len == CMSG_LEN(sizeof(int)))
                        memcpy(&fd, CMSG_DATA(c), sizeof(int));
        if ((size_t)n != sizeof(err))
                return -EIO; /* the child died before answering */
        if (mh.msg_flags & MSG_CTRUNC)
                return -EIO;
        if (err == SWITCH_FAILED) {
                *ret_detail = "flashd could not take on the client's credentials to open it";
                return -EPERM;
        }
        if (err < 0)
                return err;
        if (fd < 0)
                return -EIO;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

static int open_switch(const PeerCred *peer, const char *path, int flags, int *ret_fd,
                       const char **ret_detail)
{
        _cleanup_close_ int parent_end = -EBADF, child_end = -EBADF;
        int pair[2], fd = -EBADF, r, status;
        long max_fd = sysconf(_SC_OPEN_MAX);
        pid_t pid;

        if (max_fd <= 0 || max_fd > 65536)
                max_fd = 65536;
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0)
                return -errno;
        parent_end = pair[0];
        child_end = pair[1];

        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0)
                child_open(child_end, peer, path, flags, max_fd);

        child_end = safe_close(child_end);
        r = receive_fd(parent_end, &fd, ret_detail);
        if (r == -ETIMEDOUT)
                (void)kill(pid, SIGKILL);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        if (r < 0)
                return r;
        *ret_fd = fd;
        return 0;
}

/* ---- CHECK: walk the path with the client's permissions ---- */

/* Mode-bit check as the kernel's generic_permission() does it, for a peer
 * that is not root. want: 4 read, 2 write, 1 search/execute. */
static int check_mode(const struct stat *st, const PeerCred *peer, unsigned want)
{
        unsigned m;

        if (st->st_uid == peer->uid)
                m = (st->st_mode >> 6) & 7;
        else if (peer_cred_in_group(peer, st->st_gid))
                m = (st->st_mode >> 3) & 7;
        else
                m = st->st_mode & 7;
        return (m & want) == want ? 0 : -EACCES;
}

static int has_acl(int pathfd)
{
        char p[64];

        snprintf(p, sizeof(p), "/proc/self/fd/%d", pathfd);
        if (getxattr(p, "system.posix_acl_access", NULL, 0) >= 0)
                return 1;
        if (errno == ENODATA || errno == EOPNOTSUPP)
                return 0;
        return -errno;
}

static int check_inode(int pathfd, const struct stat *st, const PeerCred *peer, unsigned want,
                       const char **ret_detail)
{
        int r = has_acl(pathfd);

        if (r < 0)
                return r;
        if (r > 0) {
                *ret_detail = "it or a directory on its path has a POSIX ACL, which flashd cannot evaluate "
                              "for another user without privileges";
                return -EACCES;
        }
        return check_mode(st, peer, want);
}

static int open_root(int *ret_fd, struct stat *ret_st)
{
        int fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);

        if (fd < 0)
                return -errno;
        if (fstat(fd, ret_st) < 0) {
                safe_close(fd);
                return -errno;
        }
        *ret_fd = fd;
        return 0;
}

static int open_check(const PeerCred *peer, const char *path, int flags, int *ret_fd,
                      const char **ret_detail)
{
        _cleanup_free_ char *rest = strdup(path);
        _cleanup_close_ int cur = -EBADF, final = -EBADF;
        unsigned want = (flags & O_ACCMODE) == O_RDONLY ? 4 : (flags & O_ACCMODE) == O_WRONLY ? 2 : 6;
        unsigned followed = 0;
        struct stat cur_st, st;
        char proc[64];
        int r, fd;

        if (!rest)
                return -ENOMEM;
        r = open_root(&cur, &cur_st);
        if (r < 0)
                return r;

        for (char *p = rest;;) {
                _cleanup_close_ int next = -EBADF;
                size_t len;
                bool last;

                while (*p == '/')
                        p++;
                if (*p == '\0')
                        return -EINVAL; /* ended on a directory */
                len = strcspn(p, "/");
                last = p[len + strspn(p + len, "/")] == '\0';
                p[len] = '\0';
                char *comp = p;
                p = last ? comp + len : comp + len + 1;

                /* Looking anything up in a directory needs search permission on it. */
                r = check_inode(cur, &cur_st, peer, 1, ret_detail);
                if (r < 0)
                        return r;
                if (streq(comp, "."))
                        continue;

                next = openat(cur, comp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
                if (next < 0) {
                        /* The client may search here, but flashd itself may not. */
                        if (errno == EACCES)
                                *ret_detail = FLASHD_CANNOT_READ;
                        return -errno;
                }
                if (fstat(next, &st) < 0)
                        return -errno;

                if (S_ISLNK(st.st_mode)) {
                        char target[PATH_MAX];
                        ssize_t n;

                        if (last && (flags & O_NOFOLLOW))
                                return -ELOOP;
                        if (++followed > SYMLINK_FOLLOW_MAX)
                                return -ELOOP;
                        /* fs.protected_symlinks: a link in a sticky world-writable
                         * directory is followed only by its owner or if the directory
                         * owner owns it. */
                        if ((cur_st.st_mode & (S_ISVTX | S_IWOTH)) == (S_ISVTX | S_IWOTH) &&
                            st.st_uid != peer->uid && st.st_uid != cur_st.st_uid)
                                return -EACCES;
                        n = readlinkat(next, "", target, sizeof(target));
                        if (n < 0)
                                return -errno;
                        if ((size_t)n >= sizeof(target) || n == 0)
                                return -ENAMETOOLONG;
                        target[n] = '\0';

                        /* Continue with target + "/" + what was left of the path. */
                        char *joined;
                        if (asprintf(&joined, "%s%s%s", target, *p ? "/" : "", p) < 0)
                                return -ENOMEM;
                        if (strlen(joined) >= PATH_MAX) {
                                free(joined);
                                return -ENAMETOOLONG;
                        }
                        free(rest);
                        rest = joined;
                        p = rest;
                        if (target[0] == '/') {
                                cur = safe_close(cur);
                                r = open_root(&cur, &cur_st);
                                if (r < 0)
                                        return r;
                        }
                        continue;
                }

                if (!last) {
                        if (!S_ISDIR(st.st_mode))
                                return -ENOTDIR;
                        safe_close(cur);
                        cur = TAKE_FD(next);
                        cur_st = st;
                        continue;
                }

                /* Permission first, as open() in the SWITCH child would fail. */
                r = check_inode(next, &st, peer, want, ret_detail);
                if (r < 0)
                        return r;
                if (!S_ISREG(st.st_mode)) {
                        *ret_detail = "not a regular file";
                        return S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
                }
                final = TAKE_FD(next);
                break;
        }

        /* Reopen the very inode that was checked, with flashd's own credentials. */
        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", final);
        fd = open(proc, (flags & O_ACCMODE) | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        if (fd < 0) {
                if (errno == EACCES || errno == EPERM)
                        *ret_detail = FLASHD_CANNOT_READ;
                return -errno;
        }
        *ret_fd = fd;
        return 0;
}

int peer_open_as_full(const PeerCred *peer, const char *path, int flags, PeerOpenMode mode, int *ret_fd,
                      char **ret_message)
{
        _cleanup_close_ int fd = -EBADF;
        const char *detail = NULL;
        int r;

        if (!peer || !ret_fd || mode < 0 || mode >= _PEER_OPEN_MODE_MAX)
                return -EINVAL;
        if (ret_message)
                *ret_message = NULL;

        r = validate_request(path, flags, &detail);
        if (r < 0)
                return open_failed(r, peer, strna(path), flags, detail, ret_message);

        if (mode == PEER_OPEN_AUTO)
                mode = peer_open_mode_effective();

        if (peer->uid == 0) {
                /* Root may open anything; flashd opens it with its own rights. */
                fd = open(path, flags | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
                r = fd < 0 ? -errno : 0;
        } else if (mode == PEER_OPEN_SWITCH)
                r = open_switch(peer, path, flags, &fd, &detail);
        else
                r = open_check(peer, path, flags, &fd, &detail);
        if (r >= 0)
                r = finish_fd(fd, &detail);
        if (r < 0)
                return open_failed(r, peer, path, flags, detail, ret_message);

        *ret_fd = TAKE_FD(fd);
        return 0;
}

int peer_open_as(const PeerCred *peer, const char *path, int flags, int *ret_fd, char **ret_message)
{
        return peer_open_as_full(peer, path, flags, PEER_OPEN_AUTO, ret_fd, ret_message);
}
