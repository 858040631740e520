/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * peer-auth: the peer's credentials, their format, and who may mutate.
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

int main(void)
{
        test_may_mutate();
        test_format_and_group();
        test_from_socket();
        TESTS_EXIT();
}
