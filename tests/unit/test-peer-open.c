/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * peer-open: opening a client's path as that client. The open table runs
 * in CHECK mode always and, when the test runs as root, in SWITCH mode too:
 * both must give the same answers, which also checks that CHECK models the
 * kernel's permission rules.
 */
#include <fcntl.h>
#include <linux/capability.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "server/peer-open.h"
#include "tests.h"

#define NOBODY      65534
#define OTHER_GROUP 4242

static char root_dir[] = "/tmp/flashd-peer-auth-XXXXXX";

static void make_file(const char *name, mode_t mode, gid_t gid)
{
        char p[256];
        int fd;

        snprintf(p, sizeof(p), "%s/%s", root_dir, name);
        fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        CHECK(fd >= 0);
        CHECK_INT(write(fd, "image", 5), 5);
        if (gid != (gid_t)-1)
                CHECK_INT(fchown(fd, 0, gid), 0);
        CHECK_INT(fchmod(fd, mode), 0);
        close(fd);
}

/* A POSIX ACL that denies NOBODY although "other" may read: the xattr
 * format of the kernel (version 2; entries of tag, perm, id). */
static bool make_acl_file(void)
{
        struct {
                uint32_t version;
                struct {
                        uint16_t tag, perm;
                        uint32_t id;
                } e[5];
        } acl = { 2,
                  { { 0x01, 6, (uint32_t)-1 },     /* USER_OBJ rw */
                    { 0x02, 0, NOBODY },           /* USER nobody --- */
                    { 0x04, 4, (uint32_t)-1 },     /* GROUP_OBJ r */
                    { 0x10, 4, (uint32_t)-1 },     /* MASK r */
                    { 0x20, 4, (uint32_t)-1 } } }; /* OTHER r */
        char p[256];

        make_file("acl.bin", 0644, (gid_t)-1);
        snprintf(p, sizeof(p), "%s/acl.bin", root_dir);
        return setxattr(p, "system.posix_acl_access", &acl, sizeof(acl), 0) == 0;
}

static void setup_tree(void)
{
        char p[256];

        CHECK(mkdtemp(root_dir) != NULL);
        CHECK_INT(chmod(root_dir, 0755), 0);
        make_file("pub.bin", 0644, (gid_t)-1);
        make_file("secret.bin", 0600, (gid_t)-1);
        make_file("group.bin", 0640, OTHER_GROUP);
        make_file("world-rw.bin", 0666, (gid_t)-1);
        snprintf(p, sizeof(p), "%s/private", root_dir);
        CHECK_INT(mkdir(p, 0700), 0);
        make_file("private/inside.bin", 0644, (gid_t)-1);
        snprintf(p, sizeof(p), "%s/searchonly", root_dir);
        CHECK_INT(mkdir(p, 0711), 0);
        make_file("searchonly/inside.bin", 0644, (gid_t)-1);
        snprintf(p, sizeof(p), "%s/link", root_dir);
        CHECK_INT(symlink("pub.bin", p), 0);
        snprintf(p, sizeof(p), "%s/abslink", root_dir);
        CHECK_INT(symlink("/etc/shadow", p), 0);
        snprintf(p, sizeof(p), "%s/private-link", root_dir);
        CHECK_INT(symlink("private/inside.bin", p), 0);
        snprintf(p, sizeof(p), "%s/loop", root_dir);
        CHECK_INT(symlink("loop", p), 0);
        snprintf(p, sizeof(p), "%s/fifo", root_dir);
        CHECK_INT(mkfifo(p, 0666), 0);
}

static void cleanup_tree(void)
{
        static const char *const names[] = {
                "pub.bin", "secret.bin", "group.bin",          "world-rw.bin",
                "link",    "abslink",    "private-link",       "loop",
                "fifo",    "acl.bin",    "private/inside.bin", "searchonly/inside.bin"
        };
        char p[256];

        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                snprintf(p, sizeof(p), "%s/%s", root_dir, names[i]);
                (void)unlink(p);
        }
        snprintf(p, sizeof(p), "%s/private", root_dir);
        (void)rmdir(p);
        snprintf(p, sizeof(p), "%s/searchonly", root_dir);
        (void)rmdir(p);
        (void)rmdir(root_dir);
}

static void test_open_table(PeerOpenMode mode, bool have_acl)
{
        static const gid_t in_group[] = { OTHER_GROUP };
        static const struct {
                const char *path; /* relative to root_dir unless absolute or "!" */
                int flags;
                bool member; /* peer is in OTHER_GROUP */
                int expected;
        } cases[] = {
                { "pub.bin", O_RDONLY, false, 0 },
                { "./pub.bin", O_RDONLY, false, 0 },
                { "private/../pub.bin", O_RDONLY, false, -EACCES }, /* ".." still needs search on private */
                { "searchonly/../pub.bin", O_RDONLY, false, 0 },
                { "pub.bin", O_WRONLY, false, -EACCES },
                { "pub.bin", O_RDWR, false, -EACCES },
                { "world-rw.bin", O_RDWR, false, 0 },
                { "secret.bin", O_RDONLY, false, -EACCES },
                { "group.bin", O_RDONLY, false, -EACCES },
                { "group.bin", O_RDONLY, true, 0 },
                { "group.bin", O_WRONLY, true, -EACCES },
                { "private/inside.bin", O_RDONLY, false, -EACCES },
                { "searchonly/inside.bin", O_RDONLY, false, 0 },
                { "link", O_RDONLY, false, 0 },
                { "link", O_RDONLY | O_NOFOLLOW, false, -ELOOP },
                { "abslink", O_RDONLY, false, -EACCES },
                { "private-link", O_RDONLY, false, -EACCES },
                { "loop", O_RDONLY, false, -ELOOP },
                { "fifo", O_RDONLY, false, -EINVAL },
                { "private", O_RDONLY, false, -EACCES },
                { "searchonly", O_RDONLY, false, -EACCES },
                { "/etc", O_RDONLY, false, -EISDIR },
                { "pub.bin/x", O_RDONLY, false, -ENOTDIR },
                { "missing.bin", O_RDONLY, false, -ENOENT },
                { "pub.bin/", O_RDONLY, false, -EINVAL },
                { "/etc/shadow", O_RDONLY, false, -EACCES },
                { "/etc/passwd", O_RDONLY, false, 0 },
                { "/etc/passwd", O_RDONLY | O_CREAT, false, -EINVAL },
                { "!relative.bin", O_RDONLY, false, -EINVAL },
                /* mode 0444, but the kernel lets only the owner read it */
                { "/proc/1/maps", O_RDONLY, false, -EACCES },
                { "/proc/self/maps", O_RDONLY, false, -EACCES },
                { "/proc/version", O_RDONLY, false, -EACCES },
                { "/sys/kernel/uevent_seqnum", O_RDONLY, false, -EACCES },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(peer_cred_freep) PeerCred *p = NULL;
                _cleanup_free_ char *msg = NULL;
                char path[256];
                int fd = -EBADF, r;

                if (cases[i].path[0] == '/')
                        snprintf(path, sizeof(path), "%s", cases[i].path);
                else if (cases[i].path[0] == '!')
                        snprintf(path, sizeof(path), "%s", cases[i].path + 1);
                else
                        snprintf(path, sizeof(path), "%s/%s", root_dir, cases[i].path);

                CHECK_INT(peer_cred_new(&p, 1, NOBODY, NOBODY, cases[i].member ? in_group : NULL,
                                        cases[i].member ? 1 : 0),
                          0);
                r = peer_open_as_full(p, path, cases[i].flags, mode, &fd, &msg);
                if (r != cases[i].expected)
                        fprintf(stderr, "mode %s, %s: %d (%s)\n", peer_open_mode_to_string(mode), path, r,
                                strna(msg));
                CHECK_INT(r, cases[i].expected);
                if (r == 0) {
                        char buf[8];

                        CHECK(fd >= 0);
                        CHECK(msg == NULL);
                        CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
                        CHECK(!(fcntl(fd, F_GETFL) & O_NONBLOCK));
                        if ((cases[i].flags & O_ACCMODE) != O_WRONLY && strstr(path, ".bin"))
                                CHECK_INT(read(fd, buf, sizeof(buf)), 5);
                        close(fd);
                } else {
                        CHECK(msg != NULL && msg[0] != '\0');
                        if (r == -EACCES)
                                CHECK(msg && strstr(msg, "permission denied") && strstr(msg, "uid=65534"));
                }
        }

        if (have_acl) {
                _cleanup_(peer_cred_freep) PeerCred *p = NULL;
                _cleanup_free_ char *msg = NULL;
                char path[256];
                int fd = -EBADF;

                /* CHECK refuses any ACL; SWITCH lets the kernel apply it. Both deny. */
                snprintf(path, sizeof(path), "%s/acl.bin", root_dir);
                CHECK_INT(peer_cred_new(&p, 1, NOBODY, NOBODY, NULL, 0), 0);
                CHECK_INT(peer_open_as_full(p, path, O_RDONLY, mode, &fd, &msg), -EACCES);
        }
}

/* Without CAP_SETUID/CAP_SETGID: AUTO means CHECK, and forcing SWITCH fails
 * safe with a message that says flashd could not become the client. Runs in
 * a child, which drops its effective capabilities. */
static void test_switch_without_caps(void)
{
        int status = 0;
        pid_t pid = fork();

        CHECK(pid >= 0);
        if (pid == 0) {
                struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
                struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3] = {};
                PeerCred *p = NULL;
                char *msg = NULL;
                int fd = -EBADF, r, ok;

                if (syscall(SYS_capget, &h, d) < 0)
                        _exit(2);
                d[0].effective = d[1].effective = 0;
                if (syscall(SYS_capset, &h, d) < 0)
                        _exit(2);
                if (peer_cred_new(&p, 1, NOBODY, NOBODY, NULL, 0) < 0)
                        _exit(2);
                r = peer_open_as_full(p, "/etc/passwd", O_RDONLY, PEER_OPEN_SWITCH, &fd, &msg);
                ok = r == -EACCES && msg && strstr(msg, "could not take on the client's credentials") &&
                     peer_open_mode_effective() == PEER_OPEN_CHECK;
                if (!ok)
                        fprintf(stderr, "without caps: %d %s\n", r, strna(msg));
                free(msg);
                peer_cred_free(p);
                _exit(ok ? 0 : 1);
        }
        CHECK_INT(waitpid(pid, &status, 0), pid);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

int main(void)
{
        _cleanup_(peer_cred_freep) PeerCred *root = NULL;
        bool have_acl;
        int fd = -EBADF;

        CHECK_STR(peer_open_mode_to_string(PEER_OPEN_CHECK), "check");
        CHECK(peer_open_mode_to_string(_PEER_OPEN_MODE_MAX) == NULL);

        if (geteuid() != 0) {
                /* The tree needs chown() and a second uid to be meaningful. */
                fprintf(stderr, "not root: the open tables are skipped\n");
                return tests_failed ? EXIT_FAILURE : 77;
        }

        setup_tree();
        have_acl = make_acl_file();
        if (!have_acl)
                fprintf(stderr, "no POSIX ACL support in /tmp, ACL case skipped\n");
        test_open_table(PEER_OPEN_CHECK, have_acl);
        test_open_table(PEER_OPEN_SWITCH, have_acl);
        CHECK_INT(peer_open_mode_effective(), PEER_OPEN_SWITCH);
        test_switch_without_caps();

        /* Root peers open anything. */
        CHECK_INT(peer_cred_new(&root, 1, 0, 0, NULL, 0), 0);
        CHECK_INT(peer_open_as(root, "/etc/shadow", O_RDONLY, &fd, NULL), 0);
        safe_close(fd);
        /* ...but no kernel file, not even for root. */
        CHECK_INT(peer_open_as(root, "/proc/self/maps", O_RDONLY, &fd, NULL), -EACCES);

        cleanup_tree();
        TESTS_EXIT();
}
