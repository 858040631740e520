/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * peer-auth: who may mutate, and opening a client's path as that client.
 * The open table runs in CHECK mode always and, when the test runs as root,
 * in SWITCH mode too: both must give the same answers, which also checks
 * that CHECK models the kernel's permission rules.
 */
#include <fcntl.h>
#include <linux/capability.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "server/peer-auth.h"
#include "tests.h"

#define NOBODY      65534
#define OTHER_GROUP 4242

static void test_may_mutate(void)
{
        static const gid_t member_of[] = { 100, 4242 };
        static const struct {
                uid_t uid;
                gid_t gid;
                bool with_groups;
                gid_t flash_group;
                bool expected;
        } cases[] = {
                { 0, 0, false, 4242, true },            /* root */
                { 0, 0, false, (gid_t)-1, true },       /* root, group missing */
                { 1000, 1000, false, 4242, false },     /* stranger */
                { 1000, 4242, false, 4242, true },      /* primary group */
                { 1000, 1000, true, 4242, true },       /* supplementary group */
                { 1000, 1000, true, 4243, false },      /* other groups only */
                { 1000, 1000, true, (gid_t)-1, false }, /* no such group */
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(peer_cred_freep) PeerCred *p = NULL;

                CHECK_INT(peer_cred_new(&p, 1, cases[i].uid, cases[i].gid,
                                        cases[i].with_groups ? member_of : NULL,
                                        cases[i].with_groups ? ELEMENTSOF(member_of) : 0),
                          0);
                if (cases[i].uid != 0 && cases[i].uid == geteuid())
                        continue; /* the daemon's own uid is always allowed */
                CHECK_INT(peer_auth_may_mutate(p, cases[i].flash_group), cases[i].expected);
        }

        /* The daemon's own uid, whatever its groups. */
        _cleanup_(peer_cred_freep) PeerCred *self = NULL;
        CHECK_INT(peer_cred_new(&self, 1, geteuid(), 12345, NULL, 0), 0);
        CHECK(peer_auth_may_mutate(self, 4242));
        CHECK(!peer_auth_may_mutate(NULL, 4242));
}

static void test_format_and_group(void)
{
        _cleanup_(peer_cred_freep) PeerCred *root = NULL, *unknown = NULL;
        char buf[PEER_CRED_STRING_MAX];
        gid_t g = 1;

        CHECK_INT(peer_cred_new(&root, 4242, 0, 0, NULL, 0), 0);
        CHECK_STR(peer_cred_format(root, buf), "uid=0(root) gid=0 pid=4242");
        CHECK_INT(peer_cred_new(&unknown, 7, 3999999, 5, NULL, 0), 0);
        CHECK_STR(peer_cred_format(unknown, buf), "uid=3999999 gid=5 pid=7");

        CHECK_INT(peer_auth_lookup_group("root", &g), 0);
        CHECK_INT(g, 0);
        CHECK_INT(peer_auth_lookup_group("4242", &g), 0);
        CHECK_INT(g, 4242);
        CHECK_INT(peer_auth_lookup_group("no-such-group-flashd-test", &g), -ENOENT);
        CHECK_INT(peer_auth_lookup_group("", &g), -EINVAL);
        CHECK_INT(peer_auth_lookup_group("99999999999", &g), -ERANGE);

        CHECK_STR(peer_auth_open_mode_to_string(PEER_AUTH_OPEN_CHECK), "check");
        CHECK(peer_auth_open_mode_to_string(_PEER_AUTH_OPEN_MODE_MAX) == NULL);
}

static void test_from_socket(void)
{
        _cleanup_(peer_cred_freep) PeerCred *p = NULL;
        gid_t groups[256];
        int pair[2], n;

        CHECK_INT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
        CHECK_INT(peer_cred_new_from_socket(&p, pair[0]), 0);
        if (p) {
                CHECK_INT(p->uid, geteuid());
                CHECK_INT(p->gid, getegid());
                CHECK_INT(p->pid, getpid());
                n = getgroups(ELEMENTSOF(groups), groups);
                CHECK_INT(p->n_groups, n);
                for (int i = 0; i < n && (size_t)i < p->n_groups; i++)
                        CHECK(peer_cred_in_group(p, groups[i]));
        }
        close(pair[0]);
        close(pair[1]);

        /* Not a socket. */
        PeerCred *q = NULL;
        CHECK(peer_cred_new_from_socket(&q, STDIN_FILENO) < 0 || q);
        peer_cred_free(q);
}

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

static void test_open_table(PeerAuthOpenMode mode, bool have_acl)
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
                r = peer_auth_open_as_full(p, path, cases[i].flags, mode, &fd, &msg);
                if (r != cases[i].expected)
                        fprintf(stderr, "mode %s, %s: %d (%s)\n", peer_auth_open_mode_to_string(mode), path,
                                r, strna(msg));
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
                CHECK_INT(peer_auth_open_as_full(p, path, O_RDONLY, mode, &fd, &msg), -EACCES);
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
                r = peer_auth_open_as_full(p, "/etc/passwd", O_RDONLY, PEER_AUTH_OPEN_SWITCH, &fd, &msg);
                ok = r == -EACCES && msg && strstr(msg, "could not take on the client's credentials") &&
                     peer_auth_open_mode_effective() == PEER_AUTH_OPEN_CHECK;
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

        test_may_mutate();
        test_format_and_group();
        test_from_socket();

        if (geteuid() != 0) {
                /* The tree needs chown() and a second uid to be meaningful. */
                fprintf(stderr, "not root: the open tables are skipped\n");
                return tests_failed ? EXIT_FAILURE : 77;
        }

        setup_tree();
        have_acl = make_acl_file();
        if (!have_acl)
                fprintf(stderr, "no POSIX ACL support in /tmp, ACL case skipped\n");
        test_open_table(PEER_AUTH_OPEN_CHECK, have_acl);
        test_open_table(PEER_AUTH_OPEN_SWITCH, have_acl);
        CHECK_INT(peer_auth_open_mode_effective(), PEER_AUTH_OPEN_SWITCH);
        test_switch_without_caps();

        /* Root peers open anything. */
        CHECK_INT(peer_cred_new(&root, 1, 0, 0, NULL, 0), 0);
        CHECK_INT(peer_auth_open_as(root, "/etc/shadow", O_RDONLY, &fd, NULL), 0);
        safe_close(fd);
        /* ...but no kernel file, not even for root. */
        CHECK_INT(peer_auth_open_as(root, "/proc/self/maps", O_RDONLY, &fd, NULL), -EACCES);

        cleanup_tree();
        TESTS_EXIT();
}
